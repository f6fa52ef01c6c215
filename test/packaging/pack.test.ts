import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { SERVER_NODE_FLAGS } from '../../src/server-flags.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const INSTALL_TIMEOUT_MS = 300_000

interface Run { code: number | null, stdout: string, stderr: string }

// `npx --no --`: only the installed package's own bin, never a download of a namesake from the registry.

/** npm sets npm_* variables for the scripts it runs (npm test); they must not steer these npm calls. */
function cleanEnv (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name) && !name.startsWith('CODEX_EQ_')))
}

function run (command: string, args: string[], cwd: string, timeout = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: cleanEnv(), timeout, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? null, stdout, stderr })
    })
  })
}

interface PackResult { filename: string, files: Array<{ path: string }> }

// One `npm pack` and one install into an empty directory, then everything a user of the package does.
describe('the npm package', { timeout: INSTALL_TIMEOUT_MS + 180_000 }, () => {
  let work: string
  let app: string
  let packed: PackResult

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'codex-eq-pack-'))
    // The suite has just been built (pretest); --ignore-scripts skips prepack's second build.
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT)
    assert.equal(pack.code, 0, pack.stderr)
    packed = (JSON.parse(pack.stdout) as PackResult[])[0]!
    app = join(work, 'app')
    await mkdir(app)
    const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, packed.filename)], app, INSTALL_TIMEOUT_MS)
    assert.equal(install.code, 0, `npm install of the tarball failed:\n${install.stderr}`)
  })
  after(() => rm(work, { recursive: true, force: true }))

  it('ships only what runs: compiled code, views, the unit, README and licence', () => {
    const paths = packed.files.map((file) => file.path)
    const allowed = /^(package\.json|README\.md|LICENSE|scripts\/codex-equilibrium\.service|views\/[^/]+|dist\/(src|plugins)\/.+\.js)$/
    assert.deepEqual(paths.filter((path) => !allowed.test(path)), [], 'nothing else: no tests, TypeScript sources, source maps, caches or auths data')
    for (const needed of ['dist/src/cli.js', 'dist/src/commands/serve.js', 'dist/plugins/proxy.js', 'views/index.html', 'scripts/codex-equilibrium.service', 'README.md', 'LICENSE']) {
      assert.ok(paths.includes(needed), `${needed} is shipped`)
    }
    assert.equal(paths.some((path) => /(^|\/)(test|\.cache|auths)\//.test(path) || path.endsWith('.ts')), false)
  })

  it('npx codex-equilibrium --help shows the commands', async () => {
    const help = await run('npx', ['--no', '--', 'codex-equilibrium', '--help'], app)
    assert.equal(help.code, 0, help.stderr)
    assert.match(help.stdout, /^Usage: codex-eq /)
    for (const command of ['serve', 'login', 'service']) assert.match(help.stdout, new RegExp(`^ {2}${command}\\b`, 'm'), command)
  })

  it('npx codex-eq login --help explains logging in', async () => {
    const help = await run('npx', ['--no', '--', 'codex-eq', 'login', '--help'], app)
    assert.equal(help.code, 0, help.stderr)
    assert.match(help.stdout, /^Usage: codex-eq login/)
  })

  it('codex-eq serve listens, answers /healthz and exits 0 on SIGTERM', async () => {
    const check = await run(process.execPath, [join(ROOT, 'scripts/check-serve.mjs'), join(app, 'node_modules/.bin/codex-eq'), 'serve'], app)
    assert.equal(check.code, 0, check.stderr)
    assert.match(check.stdout, /listened on http:\/\/127\.0\.0\.1:\d+, \/healthz 200 \{"status":"ok".*SIGTERM -> exit 0/)
  })

  it('codex-eq service install --print renders the shipped unit for the installed CLI', async () => {
    const print = await run('npx', ['--no', '--', 'codex-eq', 'service', 'install', '--print'], app)
    assert.equal(print.code, 0, print.stderr)
    const installedCli = join(app, 'node_modules/codex-equilibrium/dist/src/cli.js')
    assert.ok(print.stdout.split('\n').includes(`ExecStart=${process.execPath} ${SERVER_NODE_FLAGS.join(' ')} ${installedCli} serve --auths-dir %S/codex-equilibrium`), print.stdout)
    const shipped = await readFile(join(app, 'node_modules/codex-equilibrium/scripts/codex-equilibrium.service'), 'utf8')
    assert.equal(print.stdout.replace(/^ExecStart=.*$/m, ''), shipped.replace(/^ExecStart=.*$/m, ''))
  })
})
