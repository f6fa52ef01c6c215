import { readFile, stat } from 'node:fs/promises'
import type { Command } from 'commander'
import { PoolError } from '../pool/account-pool.js'
import { AuthFileError, parseImport } from '../tokens/auth-file.js'
import { addTargetOptions, describeAccount, openTarget } from './accounts-target.js'
import { UserError, exitWith } from './user-error.js'

const MAX_FILE_BYTES = 1024 * 1024

const SHARED_TOKEN_WARNING = 'Note: the Codex install each file comes from must stop using it (delete or move that auth.json there). ' +
  'Refresh tokens are single use: if Codex and the pool both refresh one account, the loser is signed out (refresh_token_reused) ' +
  'and needs a new sign-in. "codex-eq login" gives the pool a login of its own instead.\n'

export function registerImport (program: Command): void {
  const command = program
    .command('import')
    .summary('add accounts from Codex auth.json files')
    .description('Add accounts from Codex auth.json files (each Codex install keeps one at ~/.codex/auth.json). ' +
      'Several files at once are fine; an account already in the pool is updated.\n\n' + SHARED_TOKEN_WARNING)
    .argument('<files...>', 'Codex auth.json files (or {id_token, access_token, refresh_token} JSON files)')
  command.option('--proxy <url>', 'the egress proxy for the imported accounts (http://, https:// or socks5://, with user:password@ if needed)')
    .option('--force', 'import even tokens older than the pool\'s (e.g. a backup you mean to restore); they may hold a spent refresh token')
  addTargetOptions(command)
  command.addHelpText('after', '\nExamples:\n' +
    '  codex-eq import ~/.codex/auth.json                    into the local auths dir\n' +
    '  codex-eq import a.json b.json --server http://my-server:1456   into a running server')
  command.action(async (files: string[], flags: Record<string, unknown>) => {
    try {
      const target = await openTarget(flags, 'write')
      process.stderr.write(SHARED_TOKEN_WARNING)
      let failed = 0
      try {
        for (const file of files) {
          try {
            const proxy = typeof flags.proxy === 'string' ? { proxy: flags.proxy } : {}
            const { view, outcome } = await target.importTokens({ ...parseImport(await readJsonFile(file)), ...proxy, force: flags.force === true })
            const done = outcome === 'created' ? 'added' : outcome === 'updated' ? 'updated' : 'already up to date:'
            process.stdout.write(`${done} account ${describeAccount(view)} from ${file}\n`)
          } catch (err) {
            if (err instanceof PoolError) err = new UserError(err.message)
            if (!(err instanceof UserError || err instanceof AuthFileError)) throw err
            failed++
            process.stderr.write(`codex-eq: ${file}: ${err.message}\n`)
          }
        }
      } finally {
        await target.close()
      }
      if (failed > 0) throw new UserError(`${failed} of ${files.length} files were not imported`)
    } catch (err) {
      exitWith(err)
    }
  })
}

async function readJsonFile (file: string): Promise<unknown> {
  let text: string
  try {
    if ((await stat(file)).size > MAX_FILE_BYTES) throw new UserError('too large for an auth.json')
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (err instanceof UserError) throw err
    throw new UserError(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  try {
    return JSON.parse(text)
  } catch {
    throw new UserError('not JSON; expected a Codex auth.json')
  }
}
