import type { Command } from 'commander'
import type { AccountView } from '../account-view.js'
import { addTargetOptions, describeAccount, findAccount, openTarget, type AccountsTarget } from './accounts-target.js'
import { exitWith } from './user-error.js'

export function registerAccounts (program: Command): void {
  const accounts = program
    .command('accounts')
    .summary('list, remove or refresh the accounts in the pool')
    .description('List, remove or refresh the accounts in the pool: those of the local auths dir, or with --server ' +
      'those of a running codex-eq server. Without a subcommand it lists them.')
    .addHelpText('after', '\nExamples:\n' +
      '  codex-eq accounts                                   list the local accounts\n' +
      '  codex-eq accounts list --server http://my-server:1456\n' +
      '  codex-eq accounts remove you@example.com --server http://my-server:1456\n' +
      '  codex-eq accounts refresh 3f2a9c1d0b7e')

  const list = accounts
    .command('list', { isDefault: true })
    .description('show each account: id, email, plan, status (active, cooling, disabled, needs_login) and when its access token expires; * marks the one serving now')
    .option('--json', 'print the accounts as JSON, as GET /accounts answers')
  addTargetOptions(list).action(async (flags: Record<string, unknown>) => {
    await withTarget(flags, 'read', async (target) => {
      const views = await target.list()
      process.stdout.write(flags.json === true ? JSON.stringify(views, null, 2) + '\n' : formatTable(views, target.where))
    })
  })

  const remove = accounts
    .command('remove')
    .description('remove an account from the pool (its tokens are deleted; sign in again to add it back)')
    .argument('<account>', 'the account\'s id, or its email')
  addTargetOptions(remove).action(async (key: string, flags: Record<string, unknown>) => {
    await withTarget(flags, 'write', async (target) => {
      const view = findAccount(await target.list(), key)
      await target.remove(view.id)
      process.stdout.write(`removed account ${describeAccount(view)} from ${target.where}\n`)
    })
  })

  const refresh = accounts
    .command('refresh')
    .description('get fresh tokens for an account from the issuer now (it says so if the account needs a new sign-in)')
    .argument('<account>', 'the account\'s id, or its email')
  addTargetOptions(refresh, ['issuer']).action(async (key: string, flags: Record<string, unknown>) => {
    await withTarget(flags, 'write', async (target) => {
      const view = await target.refresh(findAccount(await target.list(), key).id)
      process.stdout.write(`refreshed account ${describeAccount(view)}: access token valid until ${view.expire ?? 'unknown'}\n`)
    })
  })
}

async function withTarget (flags: Record<string, unknown>, access: 'read' | 'write', work: (target: AccountsTarget) => Promise<void>): Promise<void> {
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

function formatTable (views: readonly AccountView[], where: string): string {
  if (views.length === 0) return `no accounts in ${where}; add one with: codex-eq login\n`
  const rows = [['', 'ID', 'EMAIL', 'PLAN', 'STATUS', 'EXPIRES'], ...views.map((view) => [
    view.current ? '*' : '',
    view.id,
    view.email ?? '-',
    view.plan ?? '-',
    view.reason === null ? view.status : `${view.status} (${view.reason})`,
    view.expire ?? '-'
  ])]
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join(' ').trimEnd()).join('\n') + '\n'
}
