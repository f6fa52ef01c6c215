import { constants } from 'node:fs'
import { access, mkdir, readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { writeFileAtomic } from '../store/atomic-file.js'
import { UnitError, defaultEnvFile, nextCommands, readUnitTemplate, renderUnit, stateDirectory, unitPath, type UnitManager } from './systemd-unit.js'
import { failWith } from './serve.js'
import { SERVER_NODE_FLAGS } from '../server-flags.js'

interface InstallFlags {
  user?: boolean
  print?: boolean
  exec?: string
  environmentFile?: string
  authsDir?: string
  force?: boolean
}

// Not --env-file: Node itself takes --env-file from a script's arguments too and exits when the
// file is missing (nodejs/node#54232), before this CLI ever runs.
export function registerService (program: Command): void {
  const service = program.command('service').description('run the pool as a systemd service')
  service
    .command('install')
    .description('write the systemd unit for this installation (or print it) and show how to start it')
    .option('--user', 'a unit for your own user manager (systemctl --user) instead of the system')
    .option('--print', 'print the unit instead of writing it')
    .option('--exec <path>', 'the codex-eq program the service runs (default: this node and this installation\'s CLI)')
    .option('--environment-file <path>', 'file with the CODEX_EQ_* settings (default: /etc/codex-equilibrium.env, with --user ~/.config/codex-equilibrium.env)')
    .option('--auths-dir <dir>', 'where the service keeps its accounts, written into the unit as an absolute path (default: its state directory, /var/lib/codex-equilibrium, with --user ~/.local/state/codex-equilibrium)')
    .option('--force', 'replace an existing unit that differs')
    .addHelpText('after', '\nExample: sudo codex-eq service install && sudo systemctl daemon-reload && sudo systemctl enable --now codex-equilibrium')
    .action(async (flags: InstallFlags) => {
      try {
        await install(flags)
      } catch (err) {
        if (!(err instanceof UnitError)) failWith(err)
        process.stderr.write(`codex-eq: ${err.message}\n`)
        process.exit(2)
      }
    })
}

async function install (flags: InstallFlags): Promise<void> {
  const manager: UnitManager = flags.user === true ? 'user' : 'system'
  const command = flags.exec !== undefined
    ? [resolve(flags.exec)]
    : [process.execPath, ...SERVER_NODE_FLAGS, fileURLToPath(new URL('../cli.js', import.meta.url))]
  const envFile = flags.environmentFile === undefined ? undefined : resolve(flags.environmentFile)
  const stateDir = stateDirectory(manager, process.env, homedir())
  // By default the unit names its state directory as %S/codex-equilibrium, which systemd makes absolute.
  const chosenDir = flags.authsDir === undefined ? undefined : resolve(flags.authsDir)
  const authsDir = chosenDir ?? stateDir
  const { text, warnings } = renderUnit(await readUnitTemplate(), { manager, command, envFile, authsDir: chosenDir, stateDir })
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`)
  const target = unitPath(manager, process.env, homedir())
  const next = `Accounts: ${authsDir} (back it up: it holds refresh tokens).\n` +
    `Settings: CODEX_EQ_* lines in ${envFile ?? defaultEnvFile(manager, process.env, homedir())} (keep it 0600).\n` +
    `Then run:\n${nextCommands(manager, process.getuid?.() === 0).map((line) => `  ${line}\n`).join('')}`
  if (flags.print === true) {
    process.stdout.write(text)
    process.stderr.write(`Save it as ${target}.\n${next}`)
    return
  }
  if (flags.exec !== undefined) await mustBeExecutable(command[0]!)
  const existing = await readFile(target, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null
    throw err
  })
  if (existing === text) {
    process.stdout.write(`${target} is already this unit.\n${next}`)
    return
  }
  if (existing !== null && flags.force !== true) {
    throw new UnitError(`${target} exists and differs; compare with --print, replace it with --force`)
  }
  try {
    await mkdir(dirname(target), { recursive: true })
    await writeFileAtomic(target, text, { mode: 0o644 })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EACCES' || code === 'EPERM') {
      throw new UnitError(`cannot write ${target}: permission denied; run it as root (sudo), or use --user or --print`)
    }
    throw err
  }
  process.stdout.write(`Wrote ${target} (runs ${command.join(' ')} serve).\n${next}`)
}

async function mustBeExecutable (path: string): Promise<void> {
  if (await isExecutable(path)) return
  const found = await onPath('codex-eq')
  const hint = found !== null && found !== path
    ? `the codex-eq on your PATH is ${found}: --exec ${found}`
    : 'give the path that `command -v codex-eq` prints'
  throw new UnitError(`--exec ${path}: no such executable; ${hint}, or leave --exec out to run this installation (${process.execPath} ${fileURLToPath(new URL('../cli.js', import.meta.url))})`)
}

async function isExecutable (path: string): Promise<boolean> {
  return await access(path, constants.X_OK).then(() => true, () => false)
}

/** Where the shell would find a program, as `command -v` says; null when it is not on the PATH. */
async function onPath (program: string): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter((d) => d.startsWith('/'))) {
    if (await isExecutable(join(dir, program))) return join(dir, program)
  }
  return null
}
