import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test, type TestContext } from 'node:test'
import { UNIT_NAME, UnitError, readUnitTemplate, renderUnit, type UnitOptions } from '../../src/commands/systemd-unit.js'
import { SERVER_NODE_FLAGS } from '../../src/server-flags.js'

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url))
/** What `service install` runs by default: this Node with the server's flags, and this CLI. */
const RUNNING_CLI = [process.execPath, ...SERVER_NODE_FLAGS, CLI]

const ANALYZE = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
const NO_ANALYZE = ANALYZE.status === 0 ? false : 'systemd-analyze is not installed (Debian package systemd): the unit is only checked by content'

async function tempDir (t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function render (options: UnitOptions): Promise<{ text: string, warnings: string[] }> {
  return renderUnit(await readUnitTemplate(), options)
}

/** Every `Key=value` of a unit, by key, in order (keys like SystemCallFilter may repeat). */
function settings (text: string): Map<string, string[]> {
  const found = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (match === null) continue
    found.set(match[1]!, [...(found.get(match[1]!) ?? []), match[2]!])
  }
  return found
}

/** Runs systemd-analyze on a unit written under its real name; its complaints name the file. */
async function analyze (t: TestContext, text: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ status: number | null, output: string }> {
  const dir = await tempDir(t, 'codex-eq-unit-')
  const file = join(dir, UNIT_NAME)
  await writeFile(file, text)
  const result = spawnSync('systemd-analyze', [...args, file], { encoding: 'utf8', env })
  return { status: result.status, output: `${result.stdout}${result.stderr}` }
}

function assertVerified (result: { status: number | null, output: string }): void {
  assert.equal(result.status, 0, result.output)
  const complaints = result.output.split('\n').filter((line) => line.includes(UNIT_NAME))
  assert.deepEqual(complaints, [], 'systemd-analyze verify has nothing to say about the unit')
}

test('the system unit runs this installation, hardened, with its state in /var/lib', async () => {
  const { text, warnings } = await render({ manager: 'system', command: ['/usr/bin/node', '/usr/lib/node_modules/codex-equilibrium/dist/src/cli.js'] })
  assert.deepEqual(warnings, [])
  const unit = settings(text)
  assert.deepEqual(unit.get('ExecStart'), ['/usr/bin/node /usr/lib/node_modules/codex-equilibrium/dist/src/cli.js serve --auths-dir %S/codex-equilibrium'], '%S is /var/lib for the system manager')
  assert.equal(unit.get('Environment'), undefined, 'the auths dir is a flag: no settings file can make it relative')
  assert.deepEqual(unit.get('StateDirectory'), ['codex-equilibrium'])
  assert.deepEqual(unit.get('EnvironmentFile'), ['-%E/codex-equilibrium.env'], '%E is /etc; the leading - makes the file optional')
  for (const [key, value] of Object.entries({
    DynamicUser: 'yes',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    NoNewPrivileges: 'yes',
    PrivateTmp: 'yes',
    PrivateDevices: 'yes',
    RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
    UMask: '0077',
    Restart: 'on-failure',
    KillSignal: 'SIGTERM',
    CapabilityBoundingSet: '',
    WantedBy: 'multi-user.target'
  })) {
    assert.deepEqual(unit.get(key), [value], key)
  }
  const stopTimeout = /^(\d+)s$/.exec(unit.get('TimeoutStopSec')?.[0] ?? '')
  assert.ok(stopTimeout !== null && Number(stopTimeout[1]) > 30, 'systemd waits longer than the default 30s shutdown grace')
  assert.equal(unit.get('MemoryDenyWriteExecute'), undefined, 'Node\'s JIT needs writable executable memory')
})

test('arguments are quoted and escaped the way systemd splits them', async () => {
  const { text } = await render({ manager: 'system', command: ['/usr/bin/node', '/opt/o\'brien "eq"/50%/$HOME/cli.js'] })
  assert.deepEqual(settings(text).get('ExecStart'), ['/usr/bin/node "/opt/o\'brien \\"eq\\"/50%%/$$HOME/cli.js" serve --auths-dir %S/codex-equilibrium'])
})

test('rendering changes only what it must: the template is the unit', async () => {
  const template = await readUnitTemplate()
  const { text } = await render({ manager: 'system', command: ['/usr/local/bin/codex-eq'] })
  assert.equal(text, template, 'the template already runs a global install')
  const other = await render({ manager: 'system', command: RUNNING_CLI, envFile: '/srv/eq.env' })
  const changed = other.text.split('\n').filter((line, i) => line !== template.split('\n')[i])
  assert.deepEqual(changed, [`ExecStart=${RUNNING_CLI.join(' ')} serve --auths-dir %S/codex-equilibrium`, 'EnvironmentFile=-/srv/eq.env'])
})

test('a user unit keeps only the restrictions a user manager can apply', async () => {
  const { text } = await render({ manager: 'user', command: RUNNING_CLI })
  const unit = settings(text)
  for (const key of ['DynamicUser', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'PrivateUsers', 'CapabilityBoundingSet']) {
    assert.equal(unit.get(key), undefined, `${key} needs a system manager`)
  }
  for (const key of ['NoNewPrivileges', 'RestrictAddressFamilies', 'SystemCallFilter', 'UMask', 'StateDirectory', 'EnvironmentFile', 'Restart', 'KillSignal']) {
    assert.ok(unit.has(key), `${key} is kept`)
  }
  assert.deepEqual(unit.get('WantedBy'), ['default.target'])
})

test('paths under a home directory: homes become read-only instead of hidden, with a warning', async () => {
  const { text, warnings } = await render({ manager: 'system', command: ['/home/ada/.nvm/versions/node/v20.19.0/bin/node', '/home/ada/codex-equilibrium/dist/src/cli.js'] })
  assert.deepEqual(settings(text).get('ProtectHome'), ['read-only'])
  assert.equal(warnings.length, 1)
  assert.match(warnings[0]!, /home directory.*npm install -g codex-equilibrium/)
})

test('bad paths are refused', async () => {
  await assert.rejects(render({ manager: 'system', command: ['codex-eq'] }), (err: unknown) => err instanceof UnitError && /absolute path/.test(err.message))
  await assert.rejects(render({ manager: 'system', command: ['/usr/bin/codex-eq'], envFile: 'eq.env' }), UnitError)
  await assert.rejects(render({ manager: 'system', command: ['/usr/bin/codex-eq\nExecStartPre=/bin/sh'] }), /line breaks/)
  await assert.rejects(render({ manager: 'system', command: ['/opt/o\'brien/bin/node', CLI] }), /systemd cannot run a program whose path holds quotes/)
})

test('systemd-analyze verify accepts the system unit', async (t) => {
  assert.equal(NO_ANALYZE, false, String(NO_ANALYZE)) // a missing tool fails, never skips
  const { text } = await render({ manager: 'system', command: RUNNING_CLI })
  assertVerified(await analyze(t, text, ['verify']))
})

test('systemd-analyze verify accepts the user unit', async (t) => {
  assert.equal(NO_ANALYZE, false, String(NO_ANALYZE)) // a missing tool fails, never skips
  const { text } = await render({ manager: 'user', command: RUNNING_CLI })
  const runtimeDir = await tempDir(t, 'codex-eq-runtime-')
  await chmod(runtimeDir, 0o700)
  assertVerified(await analyze(t, text, ['--user', 'verify'], { ...process.env, XDG_RUNTIME_DIR: runtimeDir }))
})

test('systemd-analyze verify finds the program behind a path with spaces, % and $', async (t) => {
  assert.equal(NO_ANALYZE, false, String(NO_ANALYZE)) // a missing tool fails, never skips
  const dir = join(await tempDir(t, 'codex-eq-odd-'), 'my tools 100% $HOME')
  await mkdir(dir)
  await symlink(process.execPath, join(dir, 'node'))
  const { text } = await render({ manager: 'system', command: [join(dir, 'node'), CLI] })
  assert.match(text, /^ExecStart="\/[^\n"]*\/my tools 100%% \$HOME\/node" /m, 'quoted; % doubled; $ left alone in the program path')
  assertVerified(await analyze(t, text, ['verify']))
})

test('systemd-analyze rates the system unit\'s exposure below 2.0', async (t) => {
  assert.equal(NO_ANALYZE, false, String(NO_ANALYZE)) // a missing tool fails, never skips
  const { text } = await render({ manager: 'system', command: RUNNING_CLI })
  const result = await analyze(t, text, ['security', '--offline=yes', '--threshold=20'])
  assert.equal(result.status, 0, result.output.split('\n').filter((line) => line.includes('✗') || line.includes('Overall')).join('\n'))
  assert.match(result.output, /Overall exposure level for codex-equilibrium\.service: [01]\.\d/)
})

interface Run { code: number | null, stdout: string, stderr: string }

function runCli (args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, cwd, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? null, stdout, stderr })
    })
  })
}

async function userHome (t: TestContext): Promise<{ home: string, env: NodeJS.ProcessEnv, unitFile: string }> {
  const home = await tempDir(t, 'codex-eq-home-')
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home }
  delete env.XDG_CONFIG_HOME
  return { home, env, unitFile: join(home, '.config/systemd/user', UNIT_NAME) }
}

test('service install --print prints the unit for the running CLI and the next steps, writing nothing', async (t) => {
  const { home, env } = await userHome(t)
  const run = await runCli(['service', 'install', '--print'], env)
  assert.equal(run.code, 0, run.stderr)
  assert.equal(run.stdout, (await render({ manager: 'system', command: RUNNING_CLI })).text)
  assert.match(run.stderr, /Save it as \/etc\/systemd\/system\/codex-equilibrium\.service/)
  assert.match(run.stderr, /\/etc\/codex-equilibrium\.env/)
  assert.match(run.stderr, /systemctl daemon-reload\n.*systemctl enable --now codex-equilibrium\n/)
  const user = await runCli(['service', 'install', '--print', '--user'], env)
  assert.equal(user.stdout, (await render({ manager: 'user', command: RUNNING_CLI })).text)
  assert.match(user.stderr, /systemctl --user daemon-reload\n {2}systemctl --user enable --now codex-equilibrium\n/)
  assert.deepEqual(await readdir(home), [], 'nothing written')
})

test('service install --user writes the unit into the home, keeps it, and replaces a different one only with --force', async (t) => {
  const { env, unitFile } = await userHome(t)
  const first = await runCli(['service', 'install', '--user'], env)
  assert.equal(first.code, 0, first.stderr)
  assert.match(first.stdout, new RegExp(`Wrote ${unitFile}`))
  assert.match(first.stdout, /systemctl --user daemon-reload\n {2}systemctl --user enable --now codex-equilibrium\n/)
  const written = await readFile(unitFile, 'utf8')
  assert.equal(written, (await render({ manager: 'user', command: RUNNING_CLI })).text)
  assert.equal((await stat(unitFile)).mode & 0o777, 0o644)

  const again = await runCli(['service', 'install', '--user'], env)
  assert.equal(again.code, 0)
  assert.match(again.stdout, /is already this unit/)

  const other = await runCli(['service', 'install', '--user', '--exec', process.execPath], env)
  assert.equal(other.code, 2)
  assert.match(other.stderr, /exists and differs; compare with --print, replace it with --force/)
  assert.equal(await readFile(unitFile, 'utf8'), written, 'left as it was')

  const forced = await runCli(['service', 'install', '--user', '--exec', process.execPath, '--force'], env)
  assert.equal(forced.code, 0, forced.stderr)
  assert.deepEqual(settings(await readFile(unitFile, 'utf8')).get('ExecStart'), [`${process.execPath} serve --auths-dir %S/codex-equilibrium`])
})

test('service install --user follows XDG_CONFIG_HOME and resolves --environment-file against the working directory', async (t) => {
  const { home, env } = await userHome(t)
  const configHome = join(home, 'elsewhere')
  const run = await runCli(['service', 'install', '--user', '--environment-file', 'eq.env'], { ...env, XDG_CONFIG_HOME: configHome }, home)
  assert.equal(run.code, 0, run.stderr)
  const unit = settings(await readFile(join(configHome, 'systemd/user', UNIT_NAME), 'utf8'))
  assert.deepEqual(unit.get('EnvironmentFile'), [`-${join(home, 'eq.env')}`])
  assert.match(run.stdout, new RegExp(`Settings: CODEX_EQ_\\* lines in ${join(home, 'eq.env')}`))
})

test('service install refuses an --exec that is not an executable and writes nothing', async (t) => {
  const { home, env, unitFile } = await userHome(t)
  const run = await runCli(['service', 'install', '--user', '--exec', join(home, 'no-such-codex-eq')], env)
  assert.equal(run.code, 2)
  assert.match(run.stderr, /^codex-eq: --exec .*no-such-codex-eq: no such executable/)
  await assert.rejects(stat(unitFile), { code: 'ENOENT' })
})

test('an --auths-dir of its own is written absolute, opened for writing, and warned about', async (t) => {
  const { text, warnings } = await render({ manager: 'system', command: RUNNING_CLI, authsDir: '/srv/codex eq', stateDir: '/var/lib/codex-equilibrium' })
  const unit = settings(text)
  assert.deepEqual(unit.get('ExecStart'), [`${RUNNING_CLI.join(' ')} serve --auths-dir "/srv/codex eq"`])
  assert.deepEqual(unit.get('ReadWritePaths'), ['"-/srv/codex eq"'], 'ProtectSystem=strict would make it read-only')
  assert.equal(warnings.length, 1)
  assert.match(warnings[0]!, /^--auths-dir \/srv\/codex eq is not the unit's state directory: .*DynamicUser=yes.*\(\/var\/lib\/codex-equilibrium\) always works$/)
  assertVerified(await analyze(t, text, ['verify']))

  const own = await render({ manager: 'system', command: RUNNING_CLI, authsDir: '/var/lib/codex-equilibrium', stateDir: '/var/lib/codex-equilibrium' })
  assert.deepEqual(own.warnings, [])
  assert.equal(settings(own.text).get('ReadWritePaths'), undefined)
  assert.deepEqual(settings(own.text).get('ExecStart'), [`${RUNNING_CLI.join(' ')} serve --auths-dir /var/lib/codex-equilibrium`])
})

test('service install writes the --auths-dir absolute and warns about paths the sandbox hides (/tmp under PrivateTmp, homes)', async (t) => {
  const { home, env } = await userHome(t)
  const run = await runCli(['service', 'install', '--print', '--auths-dir', 'pool', '--exec', '/tmp/clone/bin/codex-eq'], env, home)
  assert.equal(run.code, 0, run.stderr)
  assert.deepEqual(settings(run.stdout).get('ExecStart'), [`/tmp/clone/bin/codex-eq serve --auths-dir ${join(home, 'pool')}`])
  assert.match(run.stderr, /^warning: \/tmp\/clone\/bin\/codex-eq: PrivateTmp=yes gives the service an empty \/tmp and \/var\/tmp of its own, so the service would not find it there; install the package elsewhere \(sudo npm install -g codex-equilibrium\)/m)
  assert.match(run.stderr, new RegExp(`^warning: --auths-dir ${join(home, 'pool')}: PrivateTmp=yes .* could not keep its accounts there; leave --auths-dir out to use its state directory \\(/var/lib/codex-equilibrium\\)$`, 'm'))
  assert.match(run.stderr, new RegExp(`^Accounts: ${join(home, 'pool')} \\(back it up`, 'm'))

  const inHome = await runCli(['service', 'install', '--print', '--auths-dir', '/home/ada/pool', '--exec', '/usr/bin/codex-eq'], env)
  assert.match(inHome.stderr, /^warning: --auths-dir \/home\/ada\/pool: ProtectHome keeps the service out of home directories/m)
  assert.doesNotMatch(inHome.stderr, /\/usr\/bin\/codex-eq: /, 'a program outside the hidden places is fine')

  const plain = await runCli(['service', 'install', '--print'], env)
  assert.doesNotMatch(plain.stderr, /^warning:/m, 'this installation is not under /tmp')
  assert.match(plain.stderr, /^Accounts: \/var\/lib\/codex-equilibrium \(back it up/m)
  const user = await runCli(['service', 'install', '--print', '--user', '--exec', '/tmp/clone/bin/codex-eq'], env)
  assert.doesNotMatch(user.stderr, /PrivateTmp/, 'a user unit has no private /tmp')
  assert.match(user.stderr, new RegExp(`^Accounts: ${join(home, '.local/state/codex-equilibrium')} `, 'm'))
})

test('the --exec error for a missing program suggests another path, never the same one', async (t) => {
  const { home, env } = await userHome(t)
  const bin = join(home, 'bin')
  await mkdir(bin)
  await writeFile(join(bin, 'codex-eq'), '#!/bin/sh\n', { mode: 0o755 })
  const missing = '/usr/local/bin/no-such-codex-eq'
  const found = await runCli(['service', 'install', '--user', '--exec', missing], { ...env, PATH: `${bin}:${env.PATH ?? ''}` })
  assert.equal(found.code, 2)
  assert.match(found.stderr, new RegExp(`^codex-eq: --exec ${missing}: no such executable; the codex-eq on your PATH is ${join(bin, 'codex-eq')}: --exec ${join(bin, 'codex-eq')}, or leave --exec out`))
  const same = join(bin, 'gone', 'codex-eq')
  const none = await runCli(['service', 'install', '--user', '--exec', same], { ...env, PATH: '/nonexistent' })
  assert.equal(none.code, 2)
  assert.equal(none.stderr.split(same).length, 2, `the missing path is named once, not suggested: ${none.stderr}`)
  assert.match(none.stderr, /give the path that `command -v codex-eq` prints, or leave --exec out to run this installation \(/)
})

test('the unit and the README tell the same way to install the package', async () => {
  const template = await readUnitTemplate()
  const readme = await readFile(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8')
  const systemd = readme.slice(readme.indexOf('## Running under systemd'))
  for (const step of ['sudo npm install -g codex-equilibrium', 'sudo npm install -g ./codex-equilibrium-', '/usr/local/bin/codex-eq']) {
    assert.ok(template.includes(step), `the unit says ${step}`)
    assert.ok(systemd.includes(step), `the README's systemd section says ${step}`)
  }
})
