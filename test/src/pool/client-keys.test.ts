import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ClientKeys } from '../../../src/pool/client-keys.js'
import { KeyFile } from '../../../src/store/key-file.js'
import { FileUsageLedger } from '../../../src/store/usage-ledger-file.js'
import { DAY_MS } from '../../../src/store/usage-ledger.js'
import { tempDir } from '../../helpers/stack.js'

test('keys made at once, with last-use writes in between, all reach the file', async (t) => {
  const dir = await tempDir(t)
  const ledger = new FileUsageLedger(dir, { retentionMs: DAY_MS })
  const keys = new ClientKeys(['fixed-key-0123456789'], new KeyFile(dir), ledger)
  await keys.open()
  const first = await keys.create({ name: 'first' })
  const made: Array<Promise<unknown>> = []
  for (let i = 0; i < 8; i++) {
    assert.notEqual(keys.identify(first.secret), null)
    made.push(keys.create({ name: `key-${i}` }), keys.saveLastUse())
  }
  await Promise.all(made)
  const reopened = new ClientKeys([], new KeyFile(dir), ledger)
  await reopened.open()
  assert.deepEqual(reopened.list().map((key) => key.name).sort(), ['first', ...Array.from({ length: 8 }, (_, i) => `key-${i}`)].sort())
  assert.notEqual(reopened.list().find((key) => key.name === 'first')!.last_used_at, null)
  assert.equal(reopened.identify('fixed-key-0123456789'), null, 'fixed keys are never written')
})

test('a limit counts today\'s tokens (UTC) and names when it resets', async (t) => {
  const dir = await tempDir(t)
  let now = Date.UTC(2026, 5, 1, 23, 30)
  const ledger = new FileUsageLedger(dir, { retentionMs: DAY_MS * 3, now: () => now })
  const keys = new ClientKeys([], new KeyFile(dir), ledger, () => now)
  await keys.open()
  const { secret } = await keys.create({ name: 'capped', dailyTokenLimit: 100 })
  const key = keys.identify(secret)!
  ledger.record(now, { account: 'a', key: 'capped', model: 'm', input: 80, cachedInput: 0, output: 20, reasoning: 0 })
  assert.deepEqual(keys.verdict(key), { kind: 'over_limit', limit: 100, used: 100, resetsAt: Date.UTC(2026, 5, 2) })
  now = Date.UTC(2026, 5, 2, 0, 1)
  assert.deepEqual(keys.verdict(key), { kind: 'ok' })
})
