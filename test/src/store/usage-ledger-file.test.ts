import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FileUsageLedger, LEDGER_FILE } from '../../../src/store/usage-ledger-file.js'
import { DAY_MS, HOUR_MS } from '../../../src/store/usage-ledger.js'
import { tempDir } from '../../helpers/stack.js'

const entry = { account: 'acct', key: 'alice', model: 'gpt-5', input: 10, cachedInput: 4, output: 5, reasoning: 2 }

test('counts are kept per hour, summed per day, and dropped past the retention when written', async (t) => {
  const dir = await tempDir(t)
  let now = Date.UTC(2026, 0, 10, 12, 30)
  const ledger = new FileUsageLedger(dir, { retentionMs: 2 * DAY_MS, now: () => now })
  await ledger.open()
  ledger.record(now - 3 * DAY_MS, entry) // already past the retention at the next write
  ledger.record(now - HOUR_MS, entry)
  ledger.record(now, entry)
  ledger.record(now, { ...entry, key: 'bob' })
  assert.equal(ledger.keyTokensSince('alice', Date.UTC(2026, 0, 10)), 30)
  await ledger.close()

  const reopened = new FileUsageLedger(dir, { retentionMs: 2 * DAY_MS, now: () => now })
  await reopened.open()
  const report = reopened.query({ from: now - 10 * DAY_MS, to: now + HOUR_MS, by: 'key', bucket: 'day' })
  assert.equal(report.totals.requests, 3)
  assert.deepEqual(report.groups.map((group) => [group.name, group.totals.total, group.series.length]), [['alice', 30, 1], ['bob', 15, 1]])
  const hourly = reopened.query({ from: now - 10 * DAY_MS, to: now + HOUR_MS, by: 'key', bucket: 'hour' })
  assert.equal(hourly.groups[0]!.series.length, 2)
  now += 3 * DAY_MS
  reopened.record(now, entry)
  await reopened.close()
  const file = JSON.parse(await readFile(join(dir, LEDGER_FILE), 'utf8')) as { rows: unknown[] }
  assert.equal(file.rows.length, 1, 'only the row within the retention is left')
})

test('a key\'s use today is what its hours of today add up to, as days turn and late counts come in', async (t) => {
  const dir = await tempDir(t)
  let now = Date.UTC(2026, 0, 10, 22, 0)
  const ledger = new FileUsageLedger(dir, { retentionMs: 30 * DAY_MS, now: () => now })
  await ledger.open()
  t.after(async () => { await ledger.close() })
  // A seeded walk of the clock, with counts now and then for an earlier hour (another instance's, a late answer).
  let seed = 7
  const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
  const counted: Array<{ at: number, tokens: number }> = []
  for (let step = 0; step < 400; step++) {
    now += random(3) * HOUR_MS + random(60_000)
    const at = random(5) === 0 ? now - random(30) * HOUR_MS : now
    const input = random(50)
    ledger.record(at, { ...entry, input, output: 1 })
    counted.push({ at, tokens: input + 1 })
    const today = Math.floor(now / DAY_MS) * DAY_MS
    const expected = counted.filter((c) => c.at >= today && c.at < today + DAY_MS).reduce((sum, c) => sum + c.tokens, 0)
    assert.equal(ledger.keyTokensSince('alice', today), expected, `step ${step}`)
  }
  assert.equal(ledger.keyTokensSince('nobody', Math.floor(now / DAY_MS) * DAY_MS), 0)
  // Any other start still sums its hours.
  const since = now - 40 * HOUR_MS
  assert.equal(ledger.keyTokensSince('alice', since), counted.filter((c) => Math.floor(c.at / HOUR_MS) >= Math.floor(since / HOUR_MS) && c.at <= now).reduce((sum, c) => sum + c.tokens, 0))
})

test('an unreadable ledger is kept aside and counting starts afresh', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, LEDGER_FILE), '{"version":1,"names":[')
  const kept: string[] = []
  const ledger = new FileUsageLedger(dir, { retentionMs: DAY_MS, onUnreadable: (keptAt) => kept.push(keptAt) })
  await ledger.open()
  ledger.record(Date.now(), entry)
  await ledger.close()
  assert.equal(kept.length, 1)
  assert.ok((await readdir(dir)).some((name) => name.startsWith(`${LEDGER_FILE}.unreadable-`)))
  assert.equal((JSON.parse(await readFile(join(dir, LEDGER_FILE), 'utf8')) as { rows: unknown[] }).rows.length, 1)
})

test('a quota reading is kept as the hour\'s latest; the same reading again changes nothing', async (t) => {
  const dir = await tempDir(t)
  const now = Date.UTC(2026, 0, 10, 12, 30)
  const ledger = new FileUsageLedger(dir, { retentionMs: 2 * DAY_MS, now: () => now })
  await ledger.open()
  t.after(() => ledger.close())
  assert.equal(ledger.recordQuota(now, { account: 'acct', primary: 10, secondary: 40 }), true)
  assert.equal(ledger.recordQuota(now + 1000, { account: 'acct', primary: 10, secondary: 40 }), false)
  assert.equal(ledger.recordQuota(now + 2000, { account: 'acct', primary: 12, secondary: 40 }), true)
  assert.equal(ledger.recordQuota(now + HOUR_MS, { account: 'acct', primary: 12, secondary: 40 }), true, 'a new hour gets its own point')
  const history = ledger.quotaHistory(now - HOUR_MS, now + 2 * HOUR_MS)
  assert.deepEqual(history.accounts[0]!.series.map((point) => point.primary), [12, 12])
})
