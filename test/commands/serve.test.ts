import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { mountTmpfs, unmount } from '../helpers/disk.js'
import { tempDir } from '../helpers/stack.js'

const execFileAsync = promisify(execFile)
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url))

interface Run { code: number | null, stdout: string, stderr: string }

/** This process's environment without any setting of ours, so only what a test sets counts. */
function envWithout (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CODEX_EQ_')))
}

/**
 * Runs `codex-eq serve` with these flags and env vars (none inherited from the caller's shell).
 * A start-up that wrongly succeeds is stopped after a while and shows up as a null exit code.
 */
function serve (args: string[], env: Record<string, string>, as?: { uid: number, gid: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', ...args], { env: { ...envWithout(), ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...as })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.on('error', reject)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

// One bad value of each kind of setting: [flag, env var, value].
const BAD: Array<[string, string, string]> = [
  ['--host', 'CODEX_EQ_HOST', 'no such host!'],
  ['--port', 'CODEX_EQ_PORT', '99999'],
  ['--auths-dir', 'CODEX_EQ_AUTHS_DIR', ' '],
  ['--upstream', 'CODEX_EQ_UPSTREAM', 'file:///etc/passwd'],
  ['--issuer', 'CODEX_EQ_ISSUER', 'auth.openai.com'],
  ['--callback-port', 'CODEX_EQ_CALLBACK_PORT', 'x1455'],
  ['--cooldown', 'CODEX_EQ_COOLDOWN', 'three hours'],
  ['--admin-token', 'CODEX_EQ_ADMIN_TOKEN', 'short'],
  ['--api-key', 'CODEX_EQ_API_KEYS', 'has space in it'],
  ['--log-level', 'CODEX_EQ_LOG_LEVEL', 'chatty'],
  ['--body-limit', 'CODEX_EQ_BODY_LIMIT', '10 elephants'],
  ['--stream-idle-timeout', 'CODEX_EQ_STREAM_IDLE_TIMEOUT', '0'],
  ['--request-body-timeout', 'CODEX_EQ_REQUEST_BODY_TIMEOUT', '0'],
  ['--max-buffered', 'CODEX_EQ_MAX_BUFFERED', 'lots']
]

function assertOneLineNaming (run: Run, name: string): void {
  assert.notEqual(run.code, 0, `exit code (stderr: ${run.stderr})`)
  assert.notEqual(run.code, null, 'it stopped by itself')
  const lines = run.stderr.split('\n').filter((line) => line !== '')
  assert.equal(lines.length, 1, `exactly one line on stderr:\n${run.stderr}`)
  assert.ok(lines[0]!.includes(name), `the line names ${name}: ${lines[0]}`)
  assert.equal(run.stdout, '')
}

for (const [flag, env, value] of BAD) {
  test(`serve refuses a bad ${flag} and a bad ${env} with one line naming it`, async (t) => {
    const dir = await tempDir(t)
    // Everything else valid and harmless, so only the bad value can stop the start.
    const ok = { CODEX_EQ_AUTHS_DIR: join(dir, 'auths'), CODEX_EQ_PORT: '0' }
    const [byFlag, byEnv] = await Promise.all([
      serve([`${flag}=${value}`], ok),
      serve([], { ...ok, [env]: value })
    ])
    assertOneLineNaming(byFlag, flag)
    assertOneLineNaming(byEnv, env)
  })
}

test('a corrupt token file stops start-up with one line naming the file, and is not touched', async (t) => {
  const dir = join(await tempDir(t), 'auths')
  await mkdir(dir, { mode: 0o700 })
  const file = join(dir, TOKENS_FILE)
  await writeFile(file, '{"version":1,"sticky":null,"accounts":[{"id":', { mode: 0o600 })
  const before = await readFile(file)
  const run = await serve(['--port', '0', '--auths-dir', dir], {})
  assertOneLineNaming(run, file)
  assert.deepEqual(await readFile(file), before, 'byte-identical')
})

test('a token file that cannot be read stops start-up with one line naming it', async (t) => {
  const dir = join(await tempDir(t), 'auths')
  await mkdir(dir, { mode: 0o700 }) // private, so the only thing wrong is the file
  await mkdir(join(dir, TOKENS_FILE))
  const run = await serve(['--port', '0'], { CODEX_EQ_AUTHS_DIR: dir })
  assertOneLineNaming(run, join(dir, TOKENS_FILE))
})

test('with the defaults, serve listens on 127.0.0.1 with ./auths (0700), answers /healthz and stops cleanly on SIGTERM', async (t) => {
  const cwd = await tempDir(t)
  // Port 0 instead of the default 1456, which may be taken on a shared machine; everything else is default.
  const child = spawn(process.execPath, [CLI, 'serve'], { cwd, env: { ...envWithout(), CODEX_EQ_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line:\n${stdout}\n${stderr}`)), 15_000)
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
      if (match !== null) { clearTimeout(timer); resolve(match[1]!) }
    })
  })
  const health = await fetch(`${url}/healthz`)
  assert.equal(health.status, 200)
  assert.equal(((await health.json()) as { status: string }).status, 'ok')
  assert.equal((await stat(join(cwd, 'auths'))).mode & 0o777, 0o700)
  child.kill('SIGTERM')
  assert.equal(await exited, 0, stderr)
})

test('the start-up line names the upstream, the issuer and the absolute auths dir, with an ISO 8601 time', async (t) => {
  const cwd = await tempDir(t)
  const args = ['serve', '--port', '0', '--auths-dir', 'pool-files', '--upstream', 'http://127.0.0.1:9/backend-api/codex', '--issuer', 'http://127.0.0.1:9']
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: envWithout(), stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  let stdout = ''
  const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line:\n${stdout}`)), 15_000)
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s
      const found = stdout.split('\n').find((text) => text.includes('listening on'))
      if (found !== undefined) { clearTimeout(timer); resolve(JSON.parse(found) as Record<string, unknown>) }
    })
  })
  const dir = join(cwd, 'pool-files')
  assert.match(String(line.msg), /^codex-equilibrium listening on http:\/\/127\.0\.0\.1:\d+ /)
  assert.ok(String(line.msg).includes('proxy /v1 → http://127.0.0.1:9/backend-api/codex'), String(line.msg))
  assert.ok(String(line.msg).includes('sign-in at http://127.0.0.1:9;'), String(line.msg))
  assert.ok(String(line.msg).endsWith(`accounts in ${dir}`), String(line.msg))
  assert.equal(line.authsDir, dir)
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
})

test('an auths dir on a read-only filesystem stops start-up with one line saying so', async (t) => {
  const disk = await mountTmpfs('1m')
  t.after(() => unmount(disk))
  await mkdir(join(disk, 'auths'), { mode: 0o700 })
  await execFileAsync('mount', ['-o', 'remount,ro', disk])
  const run = await serve(['--port', '0', '--auths-dir', join(disk, 'auths')], {})
  assertOneLineNaming(run, 'is on a read-only filesystem')
  assert.doesNotMatch(run.stderr, /cannot listen/)
})

test('an auths dir the service may not write stops start-up with one line saying so, not "cannot listen"', async (t) => {
  const parent = await tempDir(t)
  await chmod(parent, 0o755) // readable, but only root may create the auths dir in it
  const run = await serve(['--port', '0', '--auths-dir', join(parent, 'auths')], {}, { uid: 65534, gid: 65534 })
  assertOneLineNaming(run, `no permission to write in ${join(parent, 'auths')}`)
  assert.doesNotMatch(run.stderr, /cannot listen/)
})

test('an auths dir below a file stops start-up with one line saying so', async (t) => {
  const parent = await tempDir(t)
  await writeFile(join(parent, 'file'), '')
  const run = await serve(['--port', '0', '--auths-dir', join(parent, 'file', 'auths')], {})
  assertOneLineNaming(run, 'is not a directory')
})

test('a hand-edited token file with a wrongly typed field stops start-up with one line naming the field', async (t) => {
  const dir = join(await tempDir(t), 'auths')
  await mkdir(dir, { mode: 0o700 })
  const tokens = { idToken: 'a.b.c', accessToken: 'a.b.c', refreshToken: 'rt' }
  await writeFile(join(dir, TOKENS_FILE), JSON.stringify({ version: 1, sticky: null, accounts: [{ id: 'x', accountId: 'y', tokens, disabledUntil: 1e308 }] }), { mode: 0o600 })
  const run = await serve(['--port', '0', '--auths-dir', dir], {})
  assertOneLineNaming(run, '"disabledUntil" is not a time')
})
