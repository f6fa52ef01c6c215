import type { Command } from 'commander'
import type { AccountView } from '../pool/account-view.js'
import { addTargetOptions, describeAccount, findAccount, openTarget, type AccountsTarget } from './accounts-target.js'
import { columns } from './columns.js'
import { defaultList } from './default-list.js'
import { whenText } from './time-text.js'
import { exitWith } from './user-error.js'

type Flags = Record<string, unknown>

export function registerAccounts (program: Command): void {
  const accounts = program
    .command('accounts')
    .summary('list, show, remove, refresh, enable or select the accounts in the pool, or set their proxy')
    .description('Manage the accounts in the pool: those of the local auths dir, or with --server ' +
      'those of a running codex-eq server. Without a subcommand it lists them. An account is named by its id or its email.')
    .addHelpText('after', '\nExamples:\n' +
      '  codex-eq accounts                                   list the local accounts\n' +
      '  codex-eq accounts list --server http://my-server:1456\n' +
      '  codex-eq accounts enable you@example.com --server http://my-server:1456\n' +
      '  codex-eq accounts remove you@example.com --server http://my-server:1456\n' +
      '  codex-eq accounts refresh 3f2a9c1d0b7e\n' +
      '  codex-eq accounts proxy you@example.com socks5://user:password@10.0.0.5:1080')

  const { list, refuseUnknown } = defaultList(accounts,
    'show each account: id, email, plan, status (active, cooling, disabled, needs_login) and, for a resting account, when it comes back; * marks the one serving now',
    'print the accounts as JSON, as GET /accounts answers (for scripts)',
    ['list', 'show', 'remove', 'refresh', 'enable', 'select', 'proxy'])
  addTargetOptions(list).action(async (flags: Flags, command: Command) => {
    refuseUnknown(command)
    await withTarget(flags, 'read', async (target) => {
      const views = await target.list()
      process.stdout.write(flags.json === true ? JSON.stringify(views, null, 2) + '\n' : formatTable(views, target.where, Date.now()))
    })
  })

  const show = accounts
    .command('show')
    .description('show everything known about one account (as GET /accounts/:id answers; tokens masked)')
    .argument('<account>', 'the account\'s id, or its email')
    .option('--json', 'print it as JSON')
  addTargetOptions(show).action(async (key: string, flags: Flags) => {
    await withTarget(flags, 'read', async (target) => {
      const view = findAccount(await target.list(), key)
      process.stdout.write(flags.json === true ? JSON.stringify(view, null, 2) + '\n' : formatDetails(view, Date.now()))
    })
  })

  accountAction(accounts, 'remove', 'remove an account from the pool (its tokens are deleted; sign in again to add it back)', async (target, view) => {
    await target.remove(view.id)
    return `removed account ${describeAccount(view)} from ${target.where}`
  })
  accountAction(accounts, 'refresh', 'get fresh tokens for an account from the issuer now (it says so if the account needs a new sign-in)', async (target, view) => {
    const after = await target.refresh(view.id)
    return `refreshed account ${describeAccount(after)}: access token valid until ${after.expire ?? 'unknown'}`
  }, ['issuer'])
  accountAction(accounts, 'enable', 'end an account\'s cooldown or disable now, so it serves again (an account that needs a new sign-in stays out)', async (target, view) => {
    const after = await target.enable(view.id)
    return after.status === 'active'
      ? `enabled account ${describeAccount(after)}: it serves again`
      : `account ${describeAccount(after)} is still ${after.status}${after.reason === null ? '' : ` (${after.reason})`}`
  })
  accountAction(accounts, 'select', 'make an account the one serving now (it must be usable)', async (target, view) => {
    const after = await target.select(view.id)
    return `account ${describeAccount(after)} is now the current account`
  })

  const proxy = accounts
    .command('proxy')
    .description('send an account\'s upstream calls, token refreshes and usage probes through a proxy: ' +
      'http://, https:// or socks5://, with user:password@ if it wants them; "none" sends it direct again')
    .argument('<account>', 'the account\'s id, or its email')
    .argument('<url>', 'the proxy, e.g. socks5://user:password@10.0.0.5:1080, or none')
  addTargetOptions(proxy).action(async (key: string, url: string, flags: Flags) => {
    await withTarget(flags, 'write', async (target) => {
      const after = await target.setProxy(findAccount(await target.list(), key).id, url === 'none' ? null : url)
      process.stdout.write(after.proxy === null ? `account ${describeAccount(after)} connects directly\n` : `account ${describeAccount(after)} goes through ${after.proxy}\n`)
    })
  })
}

/** A subcommand that does one thing to one account, named by id or email, and says what it did in one line. */
function accountAction (accounts: Command, name: string, description: string, work: (target: AccountsTarget, view: AccountView) => Promise<string>, settings: string[] = []): void {
  const command = accounts
    .command(name)
    .description(description)
    .argument('<account>', 'the account\'s id, or its email')
  addTargetOptions(command, settings).action(async (key: string, flags: Flags) => {
    await withTarget(flags, 'write', async (target) => {
      process.stdout.write(`${await work(target, findAccount(await target.list(), key))}\n`)
    })
  })
}

async function withTarget (flags: Flags, access: 'read' | 'write', work: (target: AccountsTarget) => Promise<void>): Promise<void> {
  try {
    const target = await openTarget(flags, access)
    try {
      await work(target)
    } finally {
      await target.close()
    }
  } catch (err) {
    exitWith(err)
  }
}

/** When a resting account serves again: "14:32 (in 29 min)"; an account that needs a sign-in only comes back after one. */
function backText (view: AccountView, now: number): string {
  if (view.status === 'needs_login') return 'after a new sign-in'
  return view.disabled_until === null ? '-' : whenText(view.disabled_until, now)
}

function formatTable (views: readonly AccountView[], where: string, now: number): string {
  if (views.length === 0) return `no accounts in ${where}; add one with: codex-eq login\n`
  const rows = [['', 'ID', 'EMAIL', 'PLAN', 'STATUS', 'BACK'], ...views.map((view) => [
    view.current ? '*' : '',
    view.id,
    view.email ?? '-',
    view.plan ?? '-',
    view.reason === null ? view.status : `${view.status} (${view.reason})`,
    backText(view, now)
  ])]
  return columns(rows)
}

function formatDetails (view: AccountView, now: number): string {
  const when = (iso: string | null): string => iso === null ? '-' : whenText(iso, now)
  const lines: Array<[string, string]> = [
    ['id', view.id],
    ['email', view.email ?? '-'],
    ['ChatGPT account', view.account_id],
    ['plan', view.plan ?? '-'],
    ['status', `${view.status}${view.current ? ', serving now' : ''}`],
    ['back', backText(view, now)],
    ['reason', view.reason ?? '-'],
    ['proxy', view.proxy ?? 'none (direct)'],
    ['access token', `${view.token}, valid until ${when(view.expire)}`],
    ['last used', view.last_used ?? '-'],
    ['last refresh', view.last_refresh ?? '-'],
    ['last error', view.last_error === null ? '-' : `${view.last_error} (${view.last_error_at ?? 'time unknown'})`],
    ['requests', String(view.requests)],
    ['added', view.added_at]
  ]
  const width = Math.max(...lines.map(([label]) => label.length))
  return lines.map(([label, value]) => `${`${label}:`.padEnd(width + 1)} ${value}`).join('\n') + '\n'
}
