import type { Command } from 'commander'
import type { ActivityHour, RecentRequest } from '../pool/request-history.js'
import { columns } from './columns.js'
import { defaultList } from './default-list.js'
import { type Flags, printAnswer, readLimit, run, withServer } from './server-command.js'
import { localClock } from './time-text.js'

export function registerRequests (program: Command): void {
  const requests = program
    .command('requests')
    .summary('the last /v1 requests of a running server, and its requests and failovers per hour')
    .description('Show what a running codex-eq server served lately (kept in memory only: since it started). ' +
      'Without a subcommand it lists the last requests, newest first.')
    .addHelpText('after', '\nExamples:\n' +
      '  codex-eq requests\n' +
      '  codex-eq requests --limit 20 --server http://my-server:1456\n' +
      '  codex-eq requests activity --json')

  const { list, refuseUnknown } = defaultList(requests,
    'show the last requests: time, client key, account, model, status, attempts (more than 1: it failed over), tokens, duration',
    'print the requests as JSON, as GET /requests/recent answers',
    ['list', 'activity'])
  list.option('--limit <n>', 'at most this many requests (1 to 1000)')
  withServer(list, 'requests').action(async (flags: Flags, command: Command) => {
    refuseUnknown(command)
    await run(flags, async (server) => {
      printAnswer(flags, await server.recentRequests({ limit: readLimit(flags) }), (answer) => formatRequests(answer, server.base, Date.now()))
    })
  })

  const activity = requests
    .command('activity')
    .description('show, per hour of the last 48, how many requests ended how (2xx, 4xx, 429, 5xx) and how many failovers had which cause')
    .option('--json', 'print the hours as JSON, as GET /requests/activity answers')
  withServer(activity, 'requests').action(async (flags: Flags) => {
    await run(flags, async (server) => {
      printAnswer(flags, await server.requestActivity(), (answer) => formatActivity(answer, server.base, Date.now()))
    })
  })
}

function formatRequests (list: readonly RecentRequest[], where: string, now: number): string {
  if (list.length === 0) return `no requests on ${where} since it started\n`
  const rows = [['TIME', 'KEY', 'ACCOUNT', 'MODEL', 'STATUS', 'ATTEMPTS', 'TOKENS', 'MS'], ...list.map((request) => [
    localClock(Date.parse(request.at), now),
    request.key,
    request.account ?? '-',
    request.model ?? '-',
    String(request.status),
    String(request.attempts),
    request.tokens === null ? '-' : String(request.tokens),
    String(request.ms)
  ])]
  return columns(rows)
}

function formatActivity (hours: readonly ActivityHour[], where: string, now: number): string {
  if (hours.length === 0) return `no requests on ${where} in the last 48 hours\n`
  const counts = (record: Record<string, number>): string => Object.entries(record).map(([name, count]) => `${name} ${count}`).join(', ') || '-'
  const rows = [['HOUR', 'REQUESTS', 'FAILOVERS'], ...hours.map((hour) => [localClock(Date.parse(hour.at), now), counts(hour.requests), counts(hour.failovers)])]
  return columns(rows)
}
