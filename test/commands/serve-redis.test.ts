/*
 * `codex-eq serve` on a shared Redis: a URL it cannot use stops the start with one line, exit
 * non-zero, and never with the password in it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/stack.js'
import { freePort, startRedis } from '../support/redis-server.js'

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url))
const SECRET = 'hunter2-not-to-be-seen'

interface Run { code: number | null, stdout: string, stderr: string }

function serve (env: Record<string, string>): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CODEX_EQ_')))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve'], { env: { ...base, CODEX_EQ_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.on('error', reject)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

function assertOneLine (run: Run, pattern: RegExp): void {
  assert.notEqual(run.code, 0, `exit code (stderr: ${run.stderr})`)
  assert.notEqual(run.code, null, 'it stopped by itself')
  const lines = run.stderr.split('\n').filter((line) => line !== '')
  assert.equal(lines.length, 1, `exactly one line on stderr:\n${run.stderr}`)
  assert.match(lines[0]!, pattern)
  assert.ok(!run.stderr.includes(SECRET) && !run.stdout.includes(SECRET), 'the password is never printed')
}

test('a Redis URL of another scheme is refused with one line naming the setting', async (t) => {
  const dir = await tempDir(t)
  const run = await serve({ CODEX_EQ_AUTHS_DIR: join(dir, 'auths'), CODEX_EQ_REDIS_URL: `http://user:${SECRET}@127.0.0.1:6379` })
  assertOneLine(run, /CODEX_EQ_REDIS_URL/)
})

test('a Redis nobody listens on stops start-up with one line, without the password', async (t) => {
  const dir = await tempDir(t)
  const port = await freePort()
  const run = await serve({ CODEX_EQ_AUTHS_DIR: join(dir, 'auths'), CODEX_EQ_REDIS_URL: `redis://:${SECRET}@127.0.0.1:${port}/0` })
  assertOneLine(run, new RegExp(`cannot use Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0: connection refused`))
})

test('a wrong Redis password stops start-up with one line saying so, without the password', async (t) => {
  const dir = await tempDir(t)
  const server = await startRedis(t, { password: 'the-right-one-0123' })
  const inUrl = await serve({ CODEX_EQ_AUTHS_DIR: join(dir, 'a'), CODEX_EQ_REDIS_URL: `redis://:${SECRET}@127.0.0.1:${server.port}/0` })
  assertOneLine(inUrl, /password was refused/)
  const inEnv = await serve({ CODEX_EQ_AUTHS_DIR: join(dir, 'b'), CODEX_EQ_REDIS_URL: server.url, CODEX_EQ_REDIS_PASSWORD: SECRET })
  assertOneLine(inEnv, /password was refused/)
  const none = await serve({ CODEX_EQ_AUTHS_DIR: join(dir, 'c'), CODEX_EQ_REDIS_URL: server.url })
  assertOneLine(none, /requires a password/)
})
