import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { stdTimeFunctions } from 'pino'
import { isoTime } from '../../src/logger.js'

/** The time a timestamp function's text holds (pino's form: `,"time":…`). */
function timeIn (text: string): string {
  return (JSON.parse(`{${text.slice(1)}}`) as { time: string }).time
}

test('log times are written as pino writes ISO times, and follow the clock from one millisecond to the next', async () => {
  for (let round = 0; round < 20; round++) {
    const before = Date.now()
    const ours = isoTime()
    const pinos = stdTimeFunctions.isoTime()
    const after = Date.now()
    assert.match(ours, /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/)
    const at = Date.parse(timeIn(ours))
    assert.ok(at >= before && at <= after, `${timeIn(ours)} not between ${before} and ${after}`)
    // Same form as pino's own (the same text when both ran within one millisecond).
    if (before === after) assert.equal(ours, pinos)
    await delay(round % 2 === 0 ? 0 : 2)
  }
  const first = isoTime()
  await delay(5)
  const later = isoTime()
  assert.ok(Date.parse(timeIn(later)) > Date.parse(timeIn(first)), `${later} after ${first}`)
})

test('the server logger has written a line when the call returns, even while libuv\'s threads are busy', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ceq-log-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const out = join(dir, 'stdout.log')
  // A child whose stdout is a file: both threads of its pool busy (key derivations of a second or
  // so), one line logged, and the file read at once, before anything else can run.
  const script = `
    import { pbkdf2 } from 'node:crypto'
    import { readFileSync } from 'node:fs'
    import { serverLogger } from ${JSON.stringify(new URL('../../src/logger.js', import.meta.url).href)}
    for (let i = 0; i < 2; i++) pbkdf2('secret', 'salt', 3_000_000, 32, 'sha256', () => {})
    serverLogger('info').info({ account: 'a1', status: 200 }, 'proxied')
    process.stderr.write(readFileSync(process.env.OUT, 'utf8'))
    process.exit(0)
  `
  const stdout = openSync(out, 'w')
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', stdout, 'pipe'], env: { ...process.env, OUT: out, UV_THREADPOOL_SIZE: '2' }, encoding: 'utf8', timeout: 20_000 })
  closeSync(stdout)
  assert.equal(run.status, 0, run.stderr)
  const line = JSON.parse(run.stderr.trim()) as Record<string, unknown>
  assert.equal(line.msg, 'proxied')
  assert.equal(line.account, 'a1')
  assert.match(readFileSync(out, 'utf8'), /"msg":"proxied"/)
})
