import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * The systemd unit, rendered for one installation from the template shipped as
 * scripts/codex-equilibrium.service (the one source of the unit text).
 */
export const UNIT_NAME = 'codex-equilibrium.service'

/** `system`: /etc/systemd/system, runs at boot. `user`: the user's own manager (systemctl --user). */
export type UnitManager = 'system' | 'user'

export interface UnitOptions {
  manager: UnitManager
  /** The program and its leading arguments, `serve` is appended: [node, cli.js] or [codex-eq]. Absolute paths. */
  command: string[]
  /** Absolute path of the settings file; by default the template's (%E/codex-equilibrium.env). */
  envFile?: string
}

export interface RenderedUnit {
  text: string
  /** Things the user should know about this rendering, one sentence each. */
  warnings: string[]
}

export class UnitError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UnitError'
  }
}

export async function readUnitTemplate (): Promise<string> {
  return await readFile(new URL(`../../scripts/${UNIT_NAME}`, import.meta.url), 'utf8')
}

/**
 * A user manager can only build mount and user namespaces with unprivileged user namespaces,
 * which many systems turn off; there the service would not start at all (226/NAMESPACE). It
 * cannot switch users or drop capabilities it never had either. So a user unit leaves these out
 * and keeps the seccomp-based restrictions, which need no privileges.
 */
const SYSTEM_MANAGER_ONLY = /^(DynamicUser|CapabilityBoundingSet|AmbientCapabilities|Protect\w+|Private\w+)=/

/** ProtectHome=yes hides these; a service started from there would find no program to run. */
const HOME_DIRECTORIES = ['/home/', '/root/', '/run/user/']

export function renderUnit (template: string, options: UnitOptions): RenderedUnit {
  if (options.command.length === 0) throw new UnitError('no command to run')
  for (const path of [options.command[0]!, options.envFile].filter((p) => p !== undefined)) {
    if (!path.startsWith('/')) throw new UnitError(`${path}: must be an absolute path`)
  }
  for (const arg of [...options.command, options.envFile ?? '']) {
    if (/[\n\r\0]/.test(arg)) throw new UnitError(`${JSON.stringify(arg)}: must not contain line breaks`)
  }
  const warnings: string[] = []
  const homeBound = options.manager === 'system' && options.command.some((arg) => HOME_DIRECTORIES.some((dir) => arg.startsWith(dir)))
  if (homeBound) {
    warnings.push(`${options.command.join(' ')} lives under a home directory: the unit makes homes read-only instead of hiding them, and the service's own user must be able to read that path (a global install, npm install -g codex-equilibrium, avoids both)`)
  }
  let lines = template.split('\n')
  const [program, ...args] = [...options.command, 'serve']
  lines = replaceSetting(lines, 'ExecStart', [execProgram(program!), ...args.map(execArgument)].join(' '))
  if (options.envFile !== undefined) lines = replaceSetting(lines, 'EnvironmentFile', `-${escapeSpecifiers(options.envFile)}`)
  if (homeBound) lines = replaceSetting(lines, 'ProtectHome', 'read-only')
  if (options.manager === 'user') {
    lines = lines.filter((line) => !SYSTEM_MANAGER_ONLY.test(line))
    lines = replaceSetting(lines, 'WantedBy', 'default.target')
  }
  return { text: lines.join('\n'), warnings }
}

function replaceSetting (lines: string[], key: string, value: string): string[] {
  const index = lines.findIndex((line) => line.startsWith(`${key}=`))
  if (index === -1) throw new UnitError(`the unit template has no ${key}= line`)
  return lines.map((line, i) => (i === index ? `${key}=${value}` : line))
}

/** systemd expands %specifiers in unit settings: double them. */
function escapeSpecifiers (text: string): string {
  return text.replace(/%/g, '%%')
}

const PLAIN_WORD = /^[\w@+=:,./%$-]+$/

/**
 * The program of an ExecStart line. systemd refuses a program path holding quotes, backslashes or
 * control characters ("Executable name contains special characters") and, unlike in arguments,
 * does not expand $VARIABLES there: only %specifiers need escaping.
 */
function execProgram (path: string): string {
  if (/["'\\\x00-\x1f\x7f]/.test(path)) throw new UnitError(`${path}: systemd cannot run a program whose path holds quotes, backslashes or control characters; install it elsewhere`)
  const escaped = escapeSpecifiers(path)
  return PLAIN_WORD.test(escaped) ? escaped : `"${escaped}"`
}

/** One argument of an ExecStart line, quoted the way systemd splits it, with % and $ doubled. */
function execArgument (arg: string): string {
  const escaped = escapeSpecifiers(arg).replace(/\$/g, '$$$$')
  return PLAIN_WORD.test(escaped) ? escaped : `"${escaped.replace(/[\\"]/g, '\\$&')}"`
}

/** Where the unit goes: the system's unit directory, or the user's ($XDG_CONFIG_HOME/systemd/user). */
export function unitPath (manager: UnitManager, env: NodeJS.ProcessEnv, home: string): string {
  if (manager === 'system') return join('/etc/systemd/system', UNIT_NAME)
  return join(userConfigHome(env, home), 'systemd', 'user', UNIT_NAME)
}

/** The settings file the template names (%E/codex-equilibrium.env) as the given manager resolves it. */
export function defaultEnvFile (manager: UnitManager, env: NodeJS.ProcessEnv, home: string): string {
  return join(manager === 'system' ? '/etc' : userConfigHome(env, home), 'codex-equilibrium.env')
}

function userConfigHome (env: NodeJS.ProcessEnv, home: string): string {
  return env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(home, '.config')
}

/** The two commands that load and start an installed unit; a system unit needs root for them. */
export function nextCommands (manager: UnitManager, isRoot: boolean): string[] {
  const systemctl = manager === 'user' ? 'systemctl --user' : isRoot ? 'systemctl' : 'sudo systemctl'
  return [`${systemctl} daemon-reload`, `${systemctl} enable --now ${UNIT_NAME.replace(/\.service$/, '')}`]
}
