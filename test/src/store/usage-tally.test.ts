import { test } from 'node:test'
import assert from 'node:assert/strict'
import { UsageTally, type QuotaRow, type Row } from '../../../src/store/usage-tally.js'
import { DAY_MS, HOUR_MS, type UsageEntry } from '../../../src/store/usage-ledger.js'

/** The tally as its adapters use it: readings from elsewhere taken as they are, pruned now and then. */
class Tally extends UsageTally {
  protected changed (): void {}

  takeReading (row: QuotaRow): void {
    this.keepQuota(row)
  }

  pruneNow (): void {
    this.prune()
  }

  clearAll (): void {
    this.clear()
  }

  rowList (): Row[] {
    return [...this.rows.values()].map((row) => ({ ...row }))
  }

  readings (): QuotaRow[] {
    return [...this.quota.values()].map((row) => ({ ...row }))
  }
}

/** An answer counted: when, and for whom. */
interface Counted { at: number, account: string, key: string, model: string }

const byId = <T>(rows: T[], id: (row: T) => string): Map<string, T> => new Map(rows.map((row) => [id(row), row]))
const rowId = (row: Row): string => `${row.hour}/${row.account}/${row.key}/${row.model}`
const readingId = (row: QuotaRow): string => `${row.hour}/${row.account}`

test('the tally holds what a plain recount holds, through repeated and late counts, readings from elsewhere, pruning and clearing', () => {
  let now = Date.UTC(2026, 0, 10, 22, 0)
  const retentionMs = 2 * DAY_MS
  const tally = new Tally(retentionMs, () => now)
  const rows = new Map<string, Row>()
  const readings = new Map<string, QuotaRow>()
  let seed = 11
  // The high bits: the low ones of this generator repeat with short periods.
  const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return Math.floor(seed / 2 ** 31 * n) }
  const pick = <T>(values: readonly T[]): T => values[random(values.length)]!
  const prune = (): void => {
    const oldest = Math.floor((now - retentionMs) / HOUR_MS)
    for (const [id, row] of rows) if (row.hour < oldest) rows.delete(id)
    for (const [id, row] of readings) if (row.hour < oldest) readings.delete(id)
  }
  const windows = new Map<string, { account: string, primary: number | null, secondary: number }>()
  let last: Counted | null = null
  let readingsTaken = 0
  let news = 0
  for (let step = 0; step < 1500; step++) {
    // Mostly the same answer again (the common case), now and then another account, key, model or an earlier hour.
    now += random(25) === 0 ? random(3) * HOUR_MS : random(60_000)
    const at = random(6) === 0 ? now - random(60) * HOUR_MS : now
    const hour = Math.floor(at / HOUR_MS)
    const account = random(5) === 0 ? pick(['acct_b', 'acct_c']) : 'acct_a'
    const action = random(20)
    if (action < 12) {
      // Often just what was counted last (whatever happened since: a prune, a clear), at its time.
      const again: Counted | null = last !== null && random(2) === 0 ? last : null
      const entry: UsageEntry = { account: again?.account ?? account, key: again?.key ?? (random(4) === 0 ? 'bob' : 'alice'), model: again?.model ?? (random(5) === 0 ? 'gpt-5' : 'gpt-5-codex'), input: random(100), cachedInput: random(10), output: random(20), reasoning: random(5) }
      const countedAt: number = again?.at ?? at
      last = { at: countedAt, account: entry.account, key: entry.key, model: entry.model }
      tally.record(countedAt, entry)
      const countedHour = Math.floor(countedAt / HOUR_MS)
      const id = `${countedHour}/${entry.account}/${entry.key}/${entry.model}`
      const row = rows.get(id) ?? { hour: countedHour, account: entry.account, key: entry.key, model: entry.model, requests: 0, input: 0, cachedInput: 0, output: 0, reasoning: 0 }
      rows.set(id, { ...row, requests: row.requests + 1, input: row.input + entry.input, cachedInput: row.cachedInput + entry.cachedInput, output: row.output + entry.output, reasoning: row.reasoning + entry.reasoning })
    } else if (action < 17) {
      // Mostly the account's windows as they were (they seldom move), now and then moved.
      const before = windows.get(account)
      const sample = before !== undefined && random(5) !== 0 ? { ...before } : { account, primary: pick([10, 20, null]), secondary: pick([40, 50]) }
      windows.set(account, sample)
      const id = `${hour}/${account}`
      const kept = readings.get(id)
      const expected = kept === undefined || kept.primary !== sample.primary || kept.secondary !== sample.secondary
      assert.equal(tally.recordQuota(at, sample), expected, `step ${step}: whether the reading is news`)
      readingsTaken++
      if (expected) {
        readings.set(id, { hour, ...sample })
        news++
      }
    } else if (action < 19) {
      // Another instance's reading for this hour or an earlier one.
      const row = { hour, account, primary: pick([10, 20, 30]), secondary: pick([40, 60]) }
      tally.takeReading(row)
      readings.set(`${hour}/${account}`, row)
    } else if (random(8) === 0) {
      tally.clearAll()
      rows.clear()
      readings.clear()
    } else {
      now += random(30) * HOUR_MS
      tally.pruneNow()
      prune()
    }
    assert.deepEqual(byId(tally.rowList(), rowId), rows, `step ${step}: the rows`)
    assert.deepEqual(byId(tally.readings(), readingId), readings, `step ${step}: the readings`)
  }
  // Both kinds of answer were asked for often: a reading that is news, and one that is not.
  assert.ok(news > readingsTaken / 10 && news < readingsTaken * 0.9, `${news} of ${readingsTaken} readings were news`)
})

test('a row or reading pruned away is not counted into any more: the same answer or reading after a prune starts afresh', () => {
  const now = Date.UTC(2026, 0, 10, 12, 0)
  const tally = new Tally(DAY_MS, () => now)
  const old = now - 30 * HOUR_MS
  const entry = { account: 'acct_z', key: 'alice', model: 'gpt-5', input: 10, cachedInput: 0, output: 5, reasoning: 0 }
  const sample = { account: 'acct_z', primary: 10, secondary: 40 }
  tally.record(old, entry)
  assert.equal(tally.recordQuota(old, sample), true)
  assert.equal(tally.recordQuota(old, sample), false, 'the same reading again is no news')
  tally.pruneNow()
  assert.deepEqual([tally.rowList(), tally.readings()], [[], []])
  tally.record(old, entry)
  assert.equal(tally.recordQuota(old, sample), true, 'the reading is kept nowhere any more: it is news')
  assert.deepEqual(tally.rowList().map((row) => row.requests), [1])
  assert.deepEqual(tally.readings(), [{ hour: Math.floor(old / HOUR_MS), ...sample }])
})
