/*
 * The store port's contract: the same cases for every adapter (the JSON file and Redis). An
 * adapter passes when the pool cannot tell them apart through `load`, `save` and `flush`.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { PoolStore, StoreData } from '../../../src/store/port.js'
import { StoreError } from '../../../src/store/store-error.js'
import { newAccount, type Account } from '../../../src/store/records.js'
import { tokenSetFor } from '../../helpers/tokens.js'

export interface ContractAdapter {
  /** A fresh, empty store, closed when the test ends. */
  open: (t: TestContext) => Promise<ContractStore>
}

export interface ContractStore {
  store: PoolStore
  /** Another handle on the same data, as a restarted process would open it (the first one is closed first). */
  reopen: () => Promise<PoolStore>
  /** Puts a record with `accounts[0].requests` set to a string behind the store's back. */
  corruptRequests: () => Promise<void>
}

export function account (n: number, addedAt = n): Account {
  const tokens = tokenSetFor({ accountId: `acct${n}`, email: `user${n}@example.com`, serial: n })
  return { ...newAccount({ id: `id${n}`, email: `user${n}@example.com`, accountId: `acct${n}`, userId: `user-${n}`, plan: 'plus', tokens, addedAt }), requests: n }
}

function richState (): StoreData {
  const first = account(1)
  const second = account(2)
  Object.assign(second, {
    disabledUntil: 2_000_000_000_000,
    disabledKind: 'cooling',
    disabledReason: 'usage limit reached',
    disabledSource: 'body.resets_at',
    lastError: 'usage limit reached',
    lastErrorAt: 1_700_000_000_000,
    lastUsedAt: 1_700_000_000_001,
    accessExpiresAt: 4_000_000_000_000,
    lastRefreshAt: 1_700_000_000_002,
    spentRefreshTokens: ['abc'],
    proxy: 'http://user:pw@127.0.0.1:3128',
    modelLimits: [{ family: 'codex_other', name: 'Other', models: ['gpt-x'], until: 2_000_000_000_000, source: 'headers' }],
    quota: { primary: { usedPercent: 40, windowMinutes: 300, resetsAt: 1_800_000_000_000 }, secondary: null, planType: 'plus', activeLimit: null, credits: {}, observedAt: 1_700_000_000_003 }
  })
  const third = account(3)
  third.needsLogin = true
  return { version: 1, sticky: 'id2', accounts: [first, second, third] }
}

export function registerStoreContract (name: string, adapter: ContractAdapter): void {
  test(`${name}: a new store loads an empty pool`, async (t) => {
    const { store } = await adapter.open(t)
    assert.deepEqual(await store.load(), { version: 1, sticky: null, accounts: [] })
  })

  test(`${name}: what was saved loads again after a restart, every field, in add order, with the sticky choice`, async (t) => {
    const opened = await adapter.open(t)
    await opened.store.load()
    const state = richState()
    await opened.store.save(structuredClone(state))
    await opened.store.flush()
    const again = await (await opened.reopen()).load()
    assert.deepEqual(again, state)
  })

  test(`${name}: changes after the first save land too: a rest, a rotated token, a removal, the sticky choice`, async (t) => {
    const opened = await adapter.open(t)
    await opened.store.load()
    const state = richState()
    await opened.store.save(state)
    state.accounts[0]!.disabledUntil = 2_100_000_000_000
    state.accounts[0]!.disabledKind = 'disabled'
    state.accounts[0]!.tokens = tokenSetFor({ accountId: 'acct1', email: 'user1@example.com', serial: 99 })
    state.accounts[0]!.requests += 5
    state.accounts = state.accounts.filter((candidate) => candidate.id !== 'id3')
    state.sticky = 'id1'
    await opened.store.save(state)
    await opened.store.flush()
    const again = await (await opened.reopen()).load()
    assert.deepEqual(again, structuredClone(state))
  })

  test(`${name}: saves in a burst, not awaited one by one: the newest state wins`, async (t) => {
    const opened = await adapter.open(t)
    await opened.store.load()
    const state: StoreData = { version: 1, sticky: null, accounts: [account(1)] }
    const saves: Array<Promise<void>> = []
    for (let i = 0; i < 20; i++) {
      state.accounts[0]!.requests = i + 1
      state.accounts[0]!.lastUsedAt = 1_700_000_000_000 + i
      saves.push(opened.store.save(state))
    }
    await Promise.all(saves)
    await opened.store.flush()
    const again = await (await opened.reopen()).load()
    assert.equal(again.accounts[0]!.requests, 20)
    assert.equal(again.accounts[0]!.lastUsedAt, 1_700_000_000_019)
  })

  test(`${name}: a record with a field of the wrong type is refused at load, naming the field`, async (t) => {
    const opened = await adapter.open(t)
    await opened.store.load()
    await opened.store.save({ version: 1, sticky: null, accounts: [account(1)] })
    await opened.store.flush()
    await opened.corruptRequests()
    const store = await opened.reopen()
    await assert.rejects(store.load(), (err: Error) => err instanceof StoreError && /"requests"/.test(err.message))
  })
}
