import { Option, type Command } from 'commander'
import { ConfigError, SETTINGS, loadConfig } from '../config.js'
import { StartupError } from '../startup-error.js'
import { StoreError } from '../store/file-store.js'

/** Adds one option per setting of the config table (flag, env var, default) to a command. */
export function addSettingOptions (command: Command, keys?: string[]): Command {
  for (const spec of SETTINGS) {
    if (keys !== undefined && !keys.includes(spec.key)) continue
    const flags = `${spec.flag} <${spec.valueName}>`
    const option = new Option(flags, `${spec.description} [env ${spec.env}${spec.defaultValue === null ? '' : `, default ${spec.defaultValue}`}]`)
    if (spec.repeatable === true) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    command.addOption(option)
  }
  return command
}

/** Errors a user can fix get one line naming the cause; anything else is a bug worth a stack. */
export function failWith (err: unknown): never {
  if (err instanceof ConfigError || err instanceof StoreError || err instanceof StartupError) {
    process.stderr.write(`codex-eq: ${err.message}\n`)
    process.exit(2)
  }
  const { code, syscall } = err as NodeJS.ErrnoException
  if (syscall === 'listen' && (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL')) {
    process.stderr.write(`codex-eq: cannot listen: ${(err as Error).message}\n`)
    process.exit(2)
  }
  throw err
}

export function registerServe (program: Command): void {
  const serve = program
    .command('serve')
    .description('run the pool: the /v1 proxy for the Codex CLI, the management API and the dashboard')
    .addHelpText('after', '\nEvery flag can also be set by its environment variable; a flag wins over the environment.\nExample: codex-eq serve --port 1456 --auths-dir /var/lib/codex-equilibrium')
  addSettingOptions(serve).action(async (flags: Record<string, unknown>) => {
    try {
      const config = loadConfig(flags, process.env)
      // Loaded only here: the other commands start without the whole server behind them.
      const { startServer } = await import('../server.js')
      await startServer(config)
    } catch (err) {
      failWith(err)
    }
  })
}
