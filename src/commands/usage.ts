import { Option, type Command } from 'commander'
import { parseDuration } from '../duration.js'
import type { QuotaHistory, UsageReport, UsageTotals } from '../store/usage-ledger.js'
import { columns } from './columns.js'
import { defaultList } from './default-list.js'
import { type Flags, printAnswer, run, withServer } from './server-command.js'
import { localClock } from './time-text.js'
import { UserError } from './user-error.js'

export function registerUsage (program: Command): void {
  const usage = program
    .command('usage')
    .summary('the tokens used per account, key or model, and the accounts\' quota over time, on a running server')
    .description('Read the usage ledger of a running codex-eq server: what every answer cost, per account, client key or model, ' +
      'per hour or day (by default the last 7 days, per account and day). Without a subcommand it lists the usage.')
    .addHelpText('after', '\nExamples:\n' +
      '  codex-eq usage\n' +
      '  codex-eq usage --by key --bucket hour --from 24h\n' +
      '  codex-eq usage --by model --from 2026-11-01 --to 2026-12-01 --json\n' +
      '  codex-eq usage quota --from 2d --server http://my-server:1456')

  const { list, refuseUnknown } = defaultList(usage,
    'show the tokens (input, cached, output, reasoning, total) and requests of each account, key or model, per day or hour',
    'print the usage as JSON, as GET /usage answers',
    ['list', 'quota'])
  list
    .addOption(new Option('--by <group>', 'one row per account, client key or model').choices(['account', 'key', 'model']))
    .addOption(new Option('--bucket <size>', 'one row per hour or per day (UTC)').choices(['hour', 'day']))
  withRange(list)
  withServer(list, 'usage ledger').action(async (flags: Flags, command: Command) => {
    refuseUnknown(command)
    await run(flags, async (server) => {
      const report = await server.usage({ by: flags.by as string | undefined, bucket: flags.bucket as string | undefined, ...range(flags) })
      printAnswer(flags, report, (answer) => formatUsage(answer, server.base, Date.now()))
    })
  })

  const quota = usage
    .command('quota')
    .description('show, per account, how much of its quota windows (primary, secondary) was used over the period: the latest and the highest sample')
    .option('--json', 'print the quota history as JSON, as GET /usage/quota answers (every sample)')
  withRange(quota)
  withServer(quota, 'usage ledger').action(async (flags: Flags) => {
    await run(flags, async (server) => {
      printAnswer(flags, await server.quotaHistory(range(flags)), (answer) => formatQuota(answer, server.base, Date.now()))
    })
  })
}

function withRange (command: Command): Command {
  return command
    .option('--from <when>', 'start: a date (2026-11-01, 2026-11-01T12:00:00Z), epoch milliseconds, or a duration back from now (24h, 7d); default 7 days before --to')
    .option('--to <when>', 'end, written the same way; default now')
}

/** `--from`/`--to` as the server takes them: a duration (`24h`) becomes the moment that long ago; anything else goes as written. */
function range (flags: Flags): { from?: string, to?: string } {
  const moment = (flag: string, text: unknown): string | undefined => {
    if (typeof text !== 'string') return undefined
    const ms = /[a-z]\s*$/i.test(text) ? parseDuration(text) : null
    if (ms !== null) return new Date(Date.now() - ms).toISOString()
    if (!/^\d+$/.test(text) && !Number.isFinite(Date.parse(text))) throw new UserError(`--${flag} "${text}" is neither a date (2026-11-01), epoch milliseconds nor a duration back from now (24h, 7d)`)
    return text
  }
  return { from: moment('from', flags.from), to: moment('to', flags.to) }
}

function formatUsage (report: UsageReport, where: string, now: number): string {
  if (report.groups.length === 0) return `no usage on ${where} from ${localClock(Date.parse(report.from), now)} to ${localClock(Date.parse(report.to), now)}\n`
  const figures = (totals: UsageTotals): string[] => [totals.requests, totals.input, totals.cachedInput, totals.output, totals.reasoning, totals.total].map(String)
  const bucketText = (at: string): string => report.bucket === 'day' ? at.slice(0, 10) : localClock(Date.parse(at), now)
  const rows = [[report.by.toUpperCase(), report.bucket.toUpperCase(), 'REQUESTS', 'INPUT', 'CACHED', 'OUTPUT', 'REASONING', 'TOTAL']]
  for (const group of report.groups) {
    for (const point of group.series) rows.push([group.name, bucketText(point.at), ...figures(point)])
  }
  rows.push(['all', '', ...figures(report.totals)])
  return columns(rows)
}

function formatQuota (history: QuotaHistory, where: string, now: number): string {
  if (history.accounts.length === 0) return `no quota samples on ${where} from ${localClock(Date.parse(history.from), now)} to ${localClock(Date.parse(history.to), now)}\n`
  const window = (values: Array<number | null>): string => {
    const known = values.filter((value): value is number => value !== null)
    return known.length === 0 ? '-' : `${known.at(-1)!}% (peak ${Math.max(...known)}%)`
  }
  const rows = [['ACCOUNT', 'SAMPLES', 'FIRST', 'LAST', 'PRIMARY', 'SECONDARY'], ...history.accounts.map(({ account, series }) => [
    account,
    String(series.length),
    series.length === 0 ? '-' : localClock(Date.parse(series[0]!.at), now),
    series.length === 0 ? '-' : localClock(Date.parse(series.at(-1)!.at), now),
    window(series.map((sample) => sample.primary)),
    window(series.map((sample) => sample.secondary))
  ])]
  return columns(rows)
}
