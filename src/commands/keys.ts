import type { Command } from 'commander'
import { parseDuration } from '../duration.js'
import type { KeyView } from '../pool/client-keys.js'
import { columns } from './columns.js'
import { defaultList } from './default-list.js'
import { type Flags, printAnswer, run, withServer } from './server-command.js'
import { localClock, whenText } from './time-text.js'
import { UserError } from './user-error.js'

export function registerKeys (program: Command): void {
  const keys = program
    .command('keys')
    .summary('list, create or delete the client keys of a running server')
    .description('Manage the named keys clients present on /v1 (Authorization: Bearer <key>), on a running codex-eq server. ' +
      'Keys from --api-key are listed as api-key-1, api-key-2… and cannot be deleted here. Without a subcommand it lists them.')
    .addHelpText('after', '\nExamples:\n' +
      '  codex-eq keys\n' +
      '  codex-eq keys create alice --daily-limit 2000000 --expires 30d\n' +
      '  codex-eq keys delete alice --server http://my-server:1456')

  const { list, refuseUnknown } = defaultList(keys,
    'show each key: id, name, tokens used today against its daily limit, last use and expiry (never a secret)',
    'print the keys as JSON, as GET /keys answers',
    ['list', 'create', 'delete'])
  withServer(list, 'keys').action(async (flags: Flags, command: Command) => {
    refuseUnknown(command)
    await run(flags, async (server) => {
      printAnswer(flags, await server.listKeys(), (views) => formatKeys(views, server.base, Date.now()))
    })
  })

  const create = keys
    .command('create')
    .description('make a key and print its secret: the only time it is shown (only its hash is kept)')
    .argument('<name>', 'the key\'s name (letters, digits, ".", "_", "-"), as usage and metrics show it')
    .option('--daily-limit <tokens>', 'tokens (input + output) the key may use a day (UTC); past it clients get a 429 until midnight UTC')
    .option('--expires <when>', 'when the key stops working: a date (2026-12-31) or a duration from now (30d, 12h)')
    .option('--json', 'print the answer as JSON')
  withServer(create, 'keys').action(async (name: string, flags: Flags) => {
    await run(flags, async (server) => {
      const body: { name: string, daily_token_limit?: number, expires_at?: string } = { name }
      if (typeof flags.dailyLimit === 'string') {
        if (!/^\d+$/.test(flags.dailyLimit) || Number(flags.dailyLimit) < 1) throw new UserError(`--daily-limit "${flags.dailyLimit}" is not a positive number of tokens`)
        body.daily_token_limit = Number(flags.dailyLimit)
      }
      if (typeof flags.expires === 'string') body.expires_at = expiryDate(flags.expires)
      const made = await server.createKey(body)
      if (flags.json === true) {
        process.stdout.write(JSON.stringify(made, null, 2) + '\n')
        return
      }
      process.stdout.write(`created key ${made.id} (${made.name})${made.daily_token_limit === null ? '' : `, ${made.daily_token_limit} tokens a day`}${made.expires_at === null ? '' : `, until ${made.expires_at}`}\n` +
        `secret (shown only now): ${made.secret}\n`)
    })
  })

  const remove = keys
    .command('delete')
    .description('delete a key: clients presenting it are refused from then on')
    .argument('<key>', 'the key\'s id or name')
  withServer(remove, 'keys').action(async (id: string, flags: Flags) => {
    await run(flags, async (server) => {
      await server.deleteKey(id)
      process.stdout.write(`deleted key ${id} on ${server.base}\n`)
    })
  })
}

/** `--expires`: an ISO date, or a duration counted from now. */
function expiryDate (text: string): string {
  const ms = parseDuration(text)
  if (ms !== null && ms > 0) return new Date(Date.now() + ms).toISOString()
  if (!Number.isFinite(Date.parse(text))) throw new UserError(`--expires "${text}" is neither a date (2026-12-31) nor a duration (30d)`)
  return text
}

function formatKeys (views: readonly KeyView[], where: string, now: number): string {
  if (views.length === 0) return `no client keys on ${where}: /v1 is open to anyone who reaches it; make one with: codex-eq keys create NAME\n`
  const rows = [['ID', 'NAME', 'TODAY', 'LAST USED', 'EXPIRES'], ...views.map((view) => [
    view.id,
    view.name,
    view.daily_token_limit === null ? String(view.tokens_today) : `${view.tokens_today}/${view.daily_token_limit}`,
    view.last_used_at === null ? '-' : localClock(Date.parse(view.last_used_at), now),
    view.expires_at === null ? '-' : whenText(view.expires_at, now)
  ])]
  return columns(rows)
}
