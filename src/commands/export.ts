import { access } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { toAccountView } from '../pool/account-view.js'
import { writeFileAtomic } from '../store/atomic-file.js'
import { toCodexAuthFile } from '../tokens/auth-file.js'
import { loadConfig } from '../config.js'
import { TokenStore } from '../store/file-store.js'
import { describeAccount, findAccount } from './accounts-target.js'
import { addSettingOptions } from './serve.js'
import { UserError, exitWith } from './user-error.js'

interface ExportFlags extends Record<string, unknown> {
  out: string
  force?: boolean
}

export function registerExport (program: Command): void {
  const command = program
    .command('export')
    .summary('write one account as a Codex auth.json')
    .description('Write one account of the local auths dir as a Codex auth.json (mode 0600).\n\n' +
      'Tokens never leave a server over HTTP, so run this on the machine that holds the auths dir. ' +
      'The pool keeps refreshing the account, and refresh tokens are single use: to hand the account to a ' +
      'Codex install for good, remove it from the pool afterwards (codex-eq accounts remove ID).')
    .argument('<account>', 'the account\'s id as "codex-eq accounts list" shows it, or its email')
    .option('--out <file>', 'the file to write, or - for standard output', 'auth.json')
    .option('--force', 'replace the file if it exists')
  addSettingOptions(command, ['authsDir'])
  command.addHelpText('after', '\nExample:\n  codex-eq export you@example.com --out ~/.codex/auth.json')
  command.action(async (key: string, flags: ExportFlags) => {
    try {
      const { authsDir } = loadConfig(flags, process.env, ['authsDir'])
      const data = await new TokenStore(authsDir).load()
      const now = Date.now()
      const view = findAccount(data.accounts.map((account) => toAccountView(account, now, data.sticky)), key)
      const account = data.accounts.find((candidate) => candidate.id === view.id)!
      const text = JSON.stringify(toCodexAuthFile(account), null, 2) + '\n'
      if (flags.out === '-') {
        process.stdout.write(text)
        return
      }
      const out = resolve(flags.out)
      if (flags.force !== true && await exists(out)) throw new UserError(`${out} already exists; pass --force to replace it`)
      await writeFileAtomic(out, text, { mode: 0o600 }).catch((err: NodeJS.ErrnoException) => {
        throw new UserError(`cannot write ${out} (${err.code ?? err.message})`)
      })
      process.stdout.write(`wrote account ${describeAccount(view)} to ${out}\n`)
      if (view.status === 'needs_login') process.stderr.write('codex-eq: note: this account needs a new sign-in; its refresh token no longer works\n')
    } catch (err) {
      exitWith(err)
    }
  })
}

async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}
