/*
 * `codex-eq serve` on a shared Redis: a URL it cannot use stops the start with one line, exit
 * non-zero, and never with the password in it.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { tempDir } from '../helpers/stack.js'
import { startCli, type Finished } from './run-cli.js'
import { freePort, startRedis } from '../support/redis-server.js'

const SECRET = 'hunter2-not-to-be-seen'

/** `codex-eq serve` with these settings (and none of the caller's), until it stops by itself (at most 15 s). */
async function serve (t: TestContext, env: Record<string, string>): Promise<Finished> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error('serve did not stop within 15 s')) }, 15_000) })
  try {
    return await Promise.race([startCli(t, ['serve'], { CODEX_EQ_PORT: '0', ...env }).done, late])
  } finally {
    clearTimeout(timer)
  }
}

function assertOneLine (run: Finished, pattern: RegExp): void {
  assert.notEqual(run.code, 0, `exit code (stderr: ${run.stderr})`)
  assert.notEqual(run.code, null, 'it stopped by itself')
  const lines = run.stderr.split('\n').filter((line) => line !== '')
  assert.equal(lines.length, 1, `exactly one line on stderr:\n${run.stderr}`)
  assert.match(lines[0]!, pattern)
  assert.ok(!run.stderr.includes(SECRET) && !run.stdout.includes(SECRET), 'the password is never printed')
}

test('a Redis URL of another scheme is refused with one line naming the setting', async (t) => {
  const dir = await tempDir(t)
  const run = await serve(t, { CODEX_EQ_AUTHS_DIR: join(dir, 'auths'), CODEX_EQ_REDIS_URL: `http://user:${SECRET}@127.0.0.1:6379` })
  assertOneLine(run, /CODEX_EQ_REDIS_URL/)
})

test('a Redis nobody listens on stops start-up with one line, without the password', async (t) => {
  const dir = await tempDir(t)
  const port = await freePort()
  const run = await serve(t, { CODEX_EQ_AUTHS_DIR: join(dir, 'auths'), CODEX_EQ_REDIS_URL: `redis://:${SECRET}@127.0.0.1:${port}/0` })
  assertOneLine(run, new RegExp(`cannot use Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0: connection refused`))
})

test('a wrong Redis password stops start-up with one line saying so, without the password', async (t) => {
  const dir = await tempDir(t)
  const server = await startRedis(t, { password: 'the-right-one-0123' })
  const inUrl = await serve(t, { CODEX_EQ_AUTHS_DIR: join(dir, 'a'), CODEX_EQ_REDIS_URL: `redis://:${SECRET}@127.0.0.1:${server.port}/0` })
  assertOneLine(inUrl, /password was refused/)
  const inEnv = await serve(t, { CODEX_EQ_AUTHS_DIR: join(dir, 'b'), CODEX_EQ_REDIS_URL: server.url, CODEX_EQ_REDIS_PASSWORD: SECRET })
  assertOneLine(inEnv, /password was refused/)
  const none = await serve(t, { CODEX_EQ_AUTHS_DIR: join(dir, 'c'), CODEX_EQ_REDIS_URL: server.url })
  assertOneLine(none, /requires a password/)
})
