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
  /** The program and its leading arguments, `serve` is appended: [node, its flags, cli.js] or [codex-eq]. Absolute paths. */
  command: string[]
  /** Absolute path of the settings file; by default the template's (%E/codex-equilibrium.env). */
  envFile?: string
  /** Absolute path of the accounts directory; by default the unit's state directory (%S/codex-equilibrium). */
  authsDir?: string
  /** The unit's state directory as this manager resolves it: an auths dir elsewhere must be opened up for writing. */
  stateDir?: string
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
  return await readFile(new URL(`../../../scripts/${UNIT_NAME}`, import.meta.url), 'utf8')
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

/** The unit's state directory, as systemd specifiers write it (/var/lib/codex-equilibrium for the system manager). */
const STATE_AUTHS_DIR = '%S/codex-equilibrium'

/** PrivateTmp=yes gives the service empty directories of its own here. */
const TEMP_DIRECTORIES = ['/tmp/', '/var/tmp/']

/** What the system unit's sandbox does to a path, in words, or null when the service sees it as it is. */
function hiddenBy (path: string): string | null {
  const inside = (dirs: string[]): boolean => dirs.some((dir) => `${path}/`.startsWith(dir))
  if (inside(TEMP_DIRECTORIES)) return 'PrivateTmp=yes gives the service an empty /tmp and /var/tmp of its own'
  if (inside(['/dev/'])) return 'PrivateDevices=yes gives the service a /dev of its own'
  if (inside(['/proc/', '/sys/'])) return 'the service cannot write the kernel\'s /proc and /sys'
  return null
}

export function renderUnit (template: string, options: UnitOptions): RenderedUnit {
  if (options.command.length === 0) throw new UnitError('no command to run')
  for (const path of [options.command[0]!, options.envFile, options.authsDir].filter((p) => p !== undefined)) {
    if (!path.startsWith('/')) throw new UnitError(`${path}: must be an absolute path`)
  }
  for (const arg of [...options.command, options.envFile ?? '', options.authsDir ?? '']) {
    if (/[\n\r\0]/.test(arg)) throw new UnitError(`${JSON.stringify(arg)}: must not contain line breaks`)
  }
  const warnings: string[] = []
  const system = options.manager === 'system'
  const homeBound = system && options.command.some((arg) => HOME_DIRECTORIES.some((dir) => arg.startsWith(dir)))
  if (homeBound) {
    warnings.push(`${options.command.join(' ')} lives under a home directory: the unit makes homes read-only instead of hiding them, and the service's own user must be able to read that path (a global install, npm install -g codex-equilibrium, avoids both)`)
  }
  if (system) {
    for (const path of options.command) {
      const hidden = hiddenBy(path)
      if (hidden !== null) warnings.push(`${path}: ${hidden}, so the service would not find it there; install the package elsewhere (sudo npm install -g codex-equilibrium) and run service install from there`)
    }
  }
  // Without a directory of its own choosing, the template's %S/codex-equilibrium, which systemd makes absolute.
  const authsDir = options.authsDir ?? STATE_AUTHS_DIR
  const ownDir = options.authsDir === undefined || options.authsDir === options.stateDir
  if (system && !ownDir) {
    const hidden = hiddenBy(authsDir) ?? (HOME_DIRECTORIES.some((dir) => `${authsDir}/`.startsWith(dir)) ? 'ProtectHome keeps the service out of home directories' : null)
    warnings.push(hidden !== null
      ? `--auths-dir ${authsDir}: ${hidden}, so the service could not keep its accounts there; leave --auths-dir out to use its state directory${options.stateDir === undefined ? '' : ` (${options.stateDir})`}`
      : `--auths-dir ${authsDir} is not the unit's state directory: the service runs as a throwaway user (DynamicUser=yes), which can write there only if the directory lets it; its state directory${options.stateDir === undefined ? '' : ` (${options.stateDir})`} always works`)
  } else if (!ownDir && hiddenBy(authsDir)?.startsWith('PrivateTmp') === true) {
    warnings.push(`--auths-dir ${authsDir} is under a temporary directory, which may be emptied at boot: keep refresh tokens somewhere lasting`)
  }
  let lines = template.split('\n')
  const [program, ...args] = [...options.command, 'serve', '--auths-dir']
  const authsDirWord = options.authsDir === undefined ? STATE_AUTHS_DIR : execArgument(options.authsDir)
  lines = replaceSetting(lines, 'ExecStart', [execProgram(program!), ...args.map(execArgument), authsDirWord].join(' '))
  if (options.envFile !== undefined) lines = replaceSetting(lines, 'EnvironmentFile', `-${escapeSpecifiers(options.envFile)}`)
  if (system && !ownDir) lines = insertAfter(lines, 'StateDirectoryMode', `ReadWritePaths=${pathWord(`-${authsDir}`)}`)
  if (homeBound) lines = replaceSetting(lines, 'ProtectHome', 'read-only')
  if (options.manager === 'user') {
    lines = lines.filter((line) => !SYSTEM_MANAGER_ONLY.test(line))
    lines = replaceSetting(lines, 'WantedBy', 'default.target')
  }
  return { text: lines.join('\n'), warnings }
}

function insertAfter (lines: string[], key: string, line: string): string[] {
  const index = lines.findIndex((text) => text.startsWith(`${key}=`))
  if (index === -1) throw new UnitError(`the unit template has no ${key}= line`)
  return [...lines.slice(0, index + 1), line, ...lines.slice(index + 1)]
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
  return quotedWord(escapeSpecifiers(arg).replace(/\$/g, '$$$$'))
}

/** A path in a space-separated list setting (ReadWritePaths=, which expands no $VARIABLES): % doubled, quoted when needed. */
function pathWord (path: string): string {
  return quotedWord(escapeSpecifiers(path))
}

function quotedWord (escaped: string): string {
  return PLAIN_WORD.test(escaped) ? escaped : `"${escaped.replace(/[\\"]/g, '\\$&')}"`
}

/** Where the unit goes: the system's unit directory, or the user's ($XDG_CONFIG_HOME/systemd/user). */
export function unitPath (manager: UnitManager, env: NodeJS.ProcessEnv, home: string): string {
  if (manager === 'system') return join('/etc/systemd/system', UNIT_NAME)
  return join(userConfigHome(env, home), 'systemd', 'user', UNIT_NAME)
}

/** The unit's state directory (%S/codex-equilibrium) as the given manager resolves it: where its accounts live by default. */
export function stateDirectory (manager: UnitManager, env: NodeJS.ProcessEnv, home: string): string {
  if (manager === 'system') return '/var/lib/codex-equilibrium'
  const stateHome = env.XDG_STATE_HOME !== undefined && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(home, '.local', 'state')
  return join(stateHome, 'codex-equilibrium')
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
