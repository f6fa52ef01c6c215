import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AccountPool, type Lease, type PoolStore, type Sent } from '../../../src/pool/account-pool.js'
import { RefreshError } from '../../../src/tokens/oauth-client.js'
import type { RefreshedTokens } from '../../../src/tokens/token-answer.js'
import type { Account } from '../../../src/store/records.js'
import { emptyStore, type StoreData } from '../../../src/store/file-store.js'
import { makeJwt, tokenSetFor } from '../../helpers/tokens.js'

const HOUR = 3_600_000
const T0 = 1_800_000_000_000

/**
 * Saves asynchronously, like the file: the state lands a tick after `save` is called, so a caller
 * that does not wait for the save is caught using tokens that are not on disk yet.
 */
class MemoryStore implements PoolStore {
  saves: StoreData[] = []
  /** Set to make the next saves fail, like a full disk. */
  failWith: Error | null = null
  constructor (public data: StoreData = emptyStore()) {}
  async load (): Promise<StoreData> { return structuredClone(this.data) }
  private writing: Promise<unknown> = Promise.resolve()
  async save (data: StoreData): Promise<void> {
    const copy = structuredClone(data)
    const write = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      if (this.failWith !== null) throw this.failWith
      this.data = copy
      this.saves.push(this.data)
    })()
    this.writing = Promise.allSettled([this.writing, write])
    await write
  }

  /** Waits for every save begun so far, as a stop does. */
  async flush (): Promise<void> { await this.writing }
}

/** Rotating single-use refresh tokens, like the issuer. */
class FakeRefresher {
  calls = 0
  fail: RefreshError | null = null
  delayMs = 0
  /** When set, every answer waits for it (the token is spent on arrival, like the issuer). */
  gate: Promise<void> | null = null
  private serial = 100
  private readonly used = new Set<string>()
  constructor (private readonly clock: { now: () => number }, private readonly ttlMs = HOUR) {}
  async refresh (refreshToken: string): Promise<RefreshedTokens> {
    this.calls++
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs))
    if (this.gate !== null) await this.gate
    if (this.fail !== null) throw this.fail
    if (this.used.has(refreshToken)) throw new RefreshError('reused', 401, 'refresh_token_reused')
    this.used.add(refreshToken)
    const accountId = refreshToken.split('_')[1]!
    const tokens = tokenSetFor({ accountId, email: `${accountId}@example.com`, expSeconds: Math.floor((this.clock.now() + this.ttlMs) / 1000), serial: ++this.serial })
    return { idToken: tokens.idToken, accessToken: tokens.accessToken, refreshToken: tokens.refreshToken }
  }
}

interface Harness {
  pool: AccountPool
  store: MemoryStore
  refresher: FakeRefresher
  clock: { t: number, now: () => number }
  ids: string[]
}

async function harness (count = 3, o: { expSeconds?: number } = {}): Promise<Harness> {
  const clock = { t: T0, now () { return this.t } }
  const store = new MemoryStore()
  const refresher = new FakeRefresher(clock)
  const pool = await AccountPool.create({ store, oauth: refresher, cooldownMs: 3 * HOUR, clock, statsFlushMs: 0, keepAliveEveryMs: 0 })
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const name = String.fromCharCode(97 + i)
    const { account } = await pool.importTokens(tokenSetFor({ accountId: `acct${name}`, email: `${name}@example.com`, expSeconds: o.expSeconds }))
    ids.push(account.id)
  }
  return { pool, store, refresher, clock, ids }
}

type Reply = { status: number, body?: unknown, headers?: Record<string, string> } | Error

/** A scripted upstream: answers per account, in order; records every lease. */
function upstream (script: Record<string, Reply[]>, fallback: Reply = { status: 200 }) {
  const leases: Lease[] = []
  const send = async (lease: Lease): Promise<Sent<string>> => {
    leases.push({ ...lease })
    const queue = script[lease.account.id] ?? []
    const reply = queue.length > 0 ? queue.shift()! : fallback
    if (reply instanceof Error) throw reply
    return { answer: { status: reply.status, headers: reply.headers ?? {}, errorBody: reply.body === undefined ? null : JSON.stringify(reply.body) }, value: `${lease.account.id}:${reply.status}` }
  }
  return { send, leases }
}

/** Lets background work (a refresh, which first writes the state) run its course. */
const settle = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 20)) }

const usageLimit = (resetsAt: number): Reply => ({ status: 429, body: { error: { type: 'usage_limit_reached', message: 'The usage limit has been reached', resets_at: resetsAt } } })

test('sticks to the first account while it works', async () => {
  const h = await harness()
  const up = upstream({})
  for (let i = 0; i < 3; i++) {
    const result = await h.pool.serve(up.send)
    assert.equal(result.kind, 'delivered')
  }
  assert.deepEqual(up.leases.map((l) => l.account.id), [h.ids[0], h.ids[0], h.ids[0]])
  assert.equal(h.pool.stickyId(), h.ids[0])
  assert.equal(h.pool.get(h.ids[0]!)!.requests, 3)
})

test('a 4xx other than 401/403/429 is the client\'s answer and penalises nobody', async () => {
  const h = await harness()
  const up = upstream({ [h.ids[0]!]: [{ status: 400, body: { detail: 'Store must be set to false' } }] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind, 'delivered')
  assert.equal(result.kind === 'delivered' && result.value, `${h.ids[0]}:400`)
  assert.equal(result.attempts, 1)
  assert.equal(h.pool.get(h.ids[0]!)!.disabledUntil, null)
})

test('a usage-limit 429 with a reset time cools the account until then and the next one serves at once', async () => {
  const h = await harness()
  const resetsAt = Math.floor(T0 / 1000) + 7200
  const up = upstream({ [h.ids[0]!]: [usageLimit(resetsAt)] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind, 'delivered')
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[1])
  assert.equal(result.attempts, 2, 'no retry of a known usage limit')
  const first = h.pool.get(h.ids[0]!)!
  assert.equal(first.disabledUntil, resetsAt * 1000)
  assert.equal(first.disabledKind, 'cooling')
  assert.equal(first.disabledSource, 'body.resets_at')
  assert.equal(h.pool.stickyId(), h.ids[1])
  assert.equal(h.refresher.calls, 0)
  // persisted: a restart (which waits for the writes) changes nothing
  await h.store.flush()
  const reloaded = await AccountPool.create({ store: h.store, oauth: h.refresher, cooldownMs: 3 * HOUR, clock: h.clock, keepAliveEveryMs: 0 })
  assert.equal(reloaded.stickyId(), h.ids[1])
  assert.equal(reloaded.get(h.ids[0]!)!.disabledUntil, resetsAt * 1000)
})

test('the reset time may come from the headers only', async () => {
  const h = await harness()
  const resetAfter = 600
  const up = upstream({ [h.ids[0]!]: [{ status: 429, body: { error: { type: 'usage_limit_reached' } }, headers: { 'x-codex-primary-used-percent': '100', 'x-codex-primary-reset-after-seconds': String(resetAfter) } }] })
  await h.pool.serve(up.send)
  assert.equal(h.pool.get(h.ids[0]!)!.disabledUntil, T0 + resetAfter * 1000)
  assert.equal(h.pool.get(h.ids[0]!)!.disabledSource, 'header.x-codex-primary-reset-after-seconds')
})

test('a 5xx is the upstream\'s fault: the account rests briefly, nothing is refreshed, the next one serves at once', async () => {
  const h = await harness()
  const up = upstream({ [h.ids[0]!]: [{ status: 502, body: { detail: 'Bad Gateway' } }] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[1])
  assert.equal(result.attempts, 2)
  assert.equal(h.refresher.calls, 0)
  const first = h.pool.get(h.ids[0]!)!
  assert.equal(first.disabledKind, 'resting')
  assert.equal(first.disabledSource, 'upstream')
  assert.equal(first.disabledUntil, T0 + 30_000)
  assert.deepEqual(result.skipped.map((s) => s.cause), ['upstream'])
})

test('an account still failing after retry and refresh is disabled for the cooldown, and the next one serves', async () => {
  const h = await harness()
  const up = upstream({ [h.ids[0]!]: [{ status: 403, body: { detail: 'Forbidden' } }, { status: 403 }, { status: 403 }] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[1])
  assert.equal(result.attempts, 4)
  const first = h.pool.get(h.ids[0]!)!
  assert.equal(first.disabledKind, 'disabled')
  assert.equal(first.disabledUntil, T0 + 3 * HOUR)
  assert.equal(first.disabledSource, 'cooldown')
  assert.match(first.disabledReason ?? '', /HTTP 403/)
  assert.deepEqual(result.skipped.map((s) => s.account), [h.ids[0]])
})

test('a 429 without a reset time takes the retry ladder', async () => {
  const h = await harness(2)
  const up = upstream({ [h.ids[0]!]: [{ status: 429, body: { error: { type: 'rate_limit_exceeded' } } }, { status: 429 }, { status: 429 }] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.attempts, 4)
  assert.equal(h.pool.get(h.ids[0]!)!.disabledKind, 'disabled')
})

test('connection errors and timeouts are the upstream\'s: one call, a brief rest, the next account', async () => {
  const h = await harness(2)
  const timeout = Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' })
  const up = upstream({ [h.ids[0]!]: [timeout, timeout, timeout] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[1])
  assert.equal(up.leases.filter((l) => l.account.id === h.ids[0]).length, 1, 'a hung upstream costs one headers timeout per account, not three')
  assert.equal(h.pool.get(h.ids[0]!)!.disabledKind, 'resting')
  assert.match(h.pool.get(h.ids[0]!)!.disabledReason ?? '', /timed out/)
})

test('a refresh refused for good marks the account "needs login" and moves on without disabling', async () => {
  const h = await harness(2)
  h.refresher.fail = new RefreshError('reused', 401, 'refresh_token_reused')
  const up = upstream({ [h.ids[0]!]: [{ status: 401 }, { status: 401 }] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[1])
  const first = h.pool.get(h.ids[0]!)!
  assert.equal(first.needsLogin, true)
  assert.match(first.disabledReason ?? '', /refresh_token_reused/)
  assert.equal(h.refresher.calls, 1)
  // never retried: later requests do not touch it
  h.refresher.fail = null
  await h.pool.serve(up.send)
  assert.equal(h.refresher.calls, 1)
  assert.equal(up.leases.filter((l) => l.account.id === h.ids[0]).length, 1, 'the 401 refreshed at once: the refused token was not sent again')
})

test('with every account resting the pool answers at once with the earliest reset, calling nobody', async () => {
  const h = await harness(3)
  const base = Math.floor(T0 / 1000)
  const up = upstream({ [h.ids[0]!]: [usageLimit(base + 900)], [h.ids[1]!]: [usageLimit(base + 300)], [h.ids[2]!]: [usageLimit(base + 600)] })
  const first = await h.pool.serve(up.send)
  assert.equal(first.kind, 'exhausted')
  assert.deepEqual(first.kind === 'exhausted' && first.exhaustion, { kind: 'limited', resetsAt: (base + 300) * 1000, limit: null })
  const calls = up.leases.length
  const second = await h.pool.serve(up.send)
  assert.equal(second.kind, 'exhausted')
  assert.equal(up.leases.length, calls, 'cooling accounts are not called')
})

test('a cooled account comes back when its reset passes, but the sticky one keeps serving', async () => {
  const h = await harness(2)
  const up = upstream({ [h.ids[0]!]: [usageLimit(Math.floor(T0 / 1000) + 60)] })
  await h.pool.serve(up.send)
  assert.equal(h.pool.stickyId(), h.ids[1])
  h.clock.t += 61_000
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[1])
  assert.equal(h.pool.currentId(), h.ids[1])
})

test('failover goes to the next account after the failed one, in add order, wrapping around', async () => {
  const h = await harness(3)
  const base = Math.floor(T0 / 1000)
  await h.pool.select(h.ids[1]!)
  const up = upstream({ [h.ids[1]!]: [usageLimit(base + 60)], [h.ids[2]!]: [usageLimit(base + 60)] })
  const result = await h.pool.serve(up.send)
  assert.deepEqual(up.leases.map((l) => l.account.id), [h.ids[1], h.ids[2], h.ids[0]])
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[0])
})

test('concurrent refreshes of one account share one call, and the rotated token is saved before it is used', async () => {
  const h = await harness(1)
  const account = h.pool.get(h.ids[0]!)!
  h.refresher.delayMs = 20
  await Promise.all([h.pool.refreshTokens(account), h.pool.refreshTokens(account), h.pool.refreshTokens(account)])
  assert.equal(h.refresher.calls, 1)
  const saved = h.store.data.accounts[0]!.tokens
  assert.equal(saved.refreshToken, account.tokens.refreshToken)
  assert.notEqual(saved.refreshToken, tokenSetFor({ accountId: 'accta', email: 'a@example.com' }).refreshToken)
})

test('the new refresh token is on disk before the request that needed it is sent', async () => {
  const h = await harness(1, { expSeconds: Math.floor(T0 / 1000) + 10 }) // dies in 10 s: must refresh first
  let onDiskWhenSent: string | null = null
  const result = await h.pool.serve(async (lease) => {
    onDiskWhenSent = h.store.data.accounts[0]!.tokens.accessToken
    return { answer: { status: 200, headers: {}, errorBody: null }, value: lease.accessToken }
  })
  assert.equal(h.refresher.calls, 1)
  assert.equal(result.kind === 'delivered' && result.value, onDiskWhenSent)
})

test('a token near its exp is refreshed in the background while the old one still serves', async () => {
  const h = await harness(1, { expSeconds: Math.floor(T0 / 1000) + 120 }) // 2 min left: inside the 5 min margin
  const oldToken = h.pool.get(h.ids[0]!)!.tokens.accessToken
  h.refresher.delayMs = 10
  const up = upstream({})
  await h.pool.serve(up.send)
  assert.equal(up.leases[0]!.accessToken, oldToken)
  await new Promise((resolve) => setTimeout(resolve, 30))
  assert.equal(h.refresher.calls, 1)
  assert.notEqual(h.pool.get(h.ids[0]!)!.tokens.accessToken, oldToken)
})

test('issuer down during a proactive refresh: the valid token keeps serving and retries back off', async () => {
  const h = await harness(1, { expSeconds: Math.floor(T0 / 1000) + 120 })
  h.refresher.fail = new RefreshError('unreachable', null, null)
  const up = upstream({})
  await h.pool.serve(up.send)
  await settle()
  await h.pool.serve(up.send)
  await settle()
  assert.equal(h.refresher.calls, 1, 'no second refresh inside the back-off')
  assert.equal(up.leases.length, 2)
  assert.equal(h.pool.get(h.ids[0]!)!.needsLogin, false)
  h.clock.t += 31_000
  await h.pool.serve(up.send)
  await settle()
  assert.equal(h.refresher.calls, 2)
})

test('enable clears a cooldown; select makes an account current; remove forgets it', async () => {
  const h = await harness(2)
  await h.pool.serve(upstream({ [h.ids[0]!]: [usageLimit(Math.floor(T0 / 1000) + 3600)] }).send)
  assert.equal(h.pool.currentId(), h.ids[1])
  await h.pool.enable(h.ids[0]!)
  assert.equal(h.pool.get(h.ids[0]!)!.disabledUntil, null)
  await h.pool.select(h.ids[0]!)
  assert.equal(h.pool.currentId(), h.ids[0])
  assert.equal(await h.pool.remove(h.ids[0]!), true)
  assert.equal(h.pool.currentId(), h.ids[1])
  assert.equal(h.store.data.accounts.length, 1)
})

test('importing the same account again updates it in place', async () => {
  const h = await harness(1)
  const again = tokenSetFor({ accountId: 'accta', email: 'a@example.com', serial: 7 })
  const { account, created } = await h.pool.importTokens(again)
  assert.equal(created, false)
  assert.equal(account.id, h.ids[0])
  assert.equal(h.pool.list().length, 1)
  assert.equal(account.tokens.refreshToken, again.refreshToken)
})

test('an aborted request stops the ladder and penalises nobody', async () => {
  const h = await harness(2)
  const abort = new AbortController()
  const result = await h.pool.serve(async () => {
    abort.abort()
    throw Object.assign(new Error('aborted'), { code: 'UND_ERR_ABORTED' })
  }, { signal: abort.signal })
  assert.equal(result.kind, 'aborted')
  assert.equal(h.pool.get(h.ids[0]!)!.disabledUntil, null)
  assert.equal(h.pool.get(h.ids[0]!)!.lastError, null)
})

test('a failed write is reported on the accounts and serving goes on', async () => {
  const h = await harness(1)
  h.store.save = async () => { throw Object.assign(new Error('no space'), { code: 'ENOSPC' }) }
  const result = await h.pool.serve(upstream({}, { status: 200 }).send)
  assert.equal(result.kind, 'delivered')
  await h.pool.persist()
  assert.match(h.pool.get(h.ids[0]!)!.lastError ?? '', /ENOSPC/)
})

// ---- fault attribution: the account's faults, the upstream's, the issuer's, one model's ----

const badGateway: Reply = { status: 502, body: { detail: 'Bad Gateway' } }

test('a 401 refreshes first: the token the backend just refused is not sent again', async () => {
  const h = await harness(2)
  const up = upstream({ [h.ids[0]!]: [{ status: 401, body: { detail: 'Unauthorized' } }, { status: 200 }] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[0])
  assert.equal(result.attempts, 2)
  assert.equal(h.refresher.calls, 1)
  assert.notEqual(up.leases[1]!.accessToken, up.leases[0]!.accessToken)
})

test('a 401 that survives the refresh disables the account after two calls, not three', async () => {
  const h = await harness(2)
  const up = upstream({ [h.ids[0]!]: [{ status: 401 }, { status: 401 }, { status: 401 }] })
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[1])
  assert.equal(up.leases.filter((l) => l.account.id === h.ids[0]).length, 2)
  assert.equal(h.pool.get(h.ids[0]!)!.disabledKind, 'disabled')
})

test('the same failure on two accounts is an outage: the walk stops, nobody rests, the upstream\'s answer is passed on', async () => {
  const h = await harness(3)
  const up = upstream({}, badGateway)
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind, 'upstream_failed')
  assert.equal(result.kind === 'upstream_failed' && result.outage, true)
  assert.equal(result.kind === 'upstream_failed' && result.value, `${h.ids[1]}:502`, 'the second account\'s own 502 goes to the client')
  assert.equal(up.leases.length, 2, 'the third account is not tried')
  for (const id of h.ids) assert.equal(h.pool.get(id)!.disabledUntil, null, 'no account rests for an outage')
  assert.equal(h.pool.outage()?.fault, 'http_502')
  assert.equal(h.refresher.calls, 0)
})

test('during an outage one request at a time probes; the others hear the outage at once; the first success ends it', async () => {
  const h = await harness(3)
  let upstreamDown = true
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let calls = 0
  const send = async (lease: Lease): Promise<Sent<string>> => {
    calls++
    await gate
    return { answer: { status: upstreamDown ? 502 : 200, headers: {}, errorBody: upstreamDown ? '{"detail":"Bad Gateway"}' : null }, value: lease.account.id }
  }
  release()
  await h.pool.serve(send) // two accounts fail alike: outage
  assert.notEqual(h.pool.outage(), null)
  const callsBefore = calls
  let hold: () => void = () => {}
  const held = new Promise<void>((resolve) => { hold = resolve })
  const probe = h.pool.serve(async (lease) => { calls++; await held; return { answer: { status: 200, headers: {}, errorBody: null }, value: lease.account.id } })
  await new Promise((resolve) => setImmediate(resolve))
  const other = await h.pool.serve(send)
  assert.equal(other.kind, 'upstream_failed', 'a request arriving while the probe is out is answered at once')
  assert.equal(other.kind === 'upstream_failed' && other.value, null)
  assert.equal(other.kind === 'upstream_failed' && other.failure.status, 502)
  assert.equal(calls, callsBefore + 1, 'only the probe went upstream')
  hold()
  upstreamDown = false
  const probed = await probe
  assert.equal(probed.kind, 'delivered')
  assert.equal(h.pool.outage(), null, 'the probe\'s success ends the outage')
  assert.equal((await h.pool.serve(send)).kind, 'delivered')
})

test('the only account failing upstream: its 5xx is passed on, and the next request probes it and clears the rest', async () => {
  const h = await harness(1)
  const up = upstream({ [h.ids[0]!]: [badGateway] })
  const first = await h.pool.serve(up.send)
  assert.equal(first.kind, 'upstream_failed')
  assert.equal(first.kind === 'upstream_failed' && first.outage, false)
  assert.equal(first.kind === 'upstream_failed' && first.value, `${h.ids[0]}:502`)
  const account = h.pool.get(h.ids[0]!)!
  assert.equal(account.disabledKind, 'resting')
  const second = await h.pool.serve(up.send)
  assert.equal(second.kind === 'delivered' && second.account.id, h.ids[0], 'probed although resting: nothing else is left')
  assert.equal(account.disabledUntil, null)
})

test('brief upstream rests double while the failures repeat, up to the cap, and start over after a success', async () => {
  const h = await harness(1)
  const rests: number[] = []
  for (let i = 0; i < 6; i++) {
    await h.pool.serve(upstream({}, badGateway).send)
    rests.push(h.pool.get(h.ids[0]!)!.disabledUntil! - T0)
  }
  assert.deepEqual(rests, [30_000, 60_000, 120_000, 240_000, 300_000, 300_000])
  await h.pool.serve(upstream({}).send)
  await h.pool.serve(upstream({}, badGateway).send)
  assert.equal(h.pool.get(h.ids[0]!)!.disabledUntil! - T0, 30_000)
})

test('the issuer unreachable while a token is dead: the account waits for the issuer, not disabled, no login needed', async () => {
  const h = await harness(2, { expSeconds: Math.floor(T0 / 1000) - 10 })
  h.refresher.fail = new RefreshError('unreachable', null, null)
  const up = upstream({})
  const result = await h.pool.serve(up.send)
  assert.equal(result.kind, 'exhausted')
  assert.equal(result.kind === 'exhausted' && result.exhaustion.kind, 'waiting', 'a retryable answer, never a usage limit')
  assert.equal(up.leases.length, 0, 'dead tokens are not sent')
  for (const id of h.ids) {
    const account = h.pool.get(id)!
    assert.equal(account.needsLogin, false)
    assert.equal(account.disabledKind, 'resting')
    assert.equal(account.disabledSource, 'issuer')
    assert.ok(account.disabledUntil! - T0 <= 30_000)
  }
  h.refresher.fail = null
  h.clock.t += 31_000
  const back = await h.pool.serve(up.send)
  assert.equal(back.kind, 'delivered', 'back by itself once the issuer answers')
})

test('a 401 whose refresh cannot reach the issuer rests the account briefly, never for the cooldown', async () => {
  const h = await harness(2)
  h.refresher.fail = new RefreshError('unreachable', null, null)
  const result = await h.pool.serve(upstream({ [h.ids[0]!]: [{ status: 401 }] }).send)
  assert.equal(result.kind === 'delivered' && result.account.id, h.ids[1])
  const first = h.pool.get(h.ids[0]!)!
  assert.equal(first.disabledKind, 'resting')
  assert.equal(first.disabledSource, 'issuer')
  assert.deepEqual(result.skipped.map((s) => s.cause), ['issuer'])
})

function modelLimit (resetsAt: number): Reply {
  return {
    status: 429,
    body: { error: { type: 'usage_limit_reached', message: 'The usage limit has been reached', resets_at: resetsAt } },
    headers: { 'x-codex-active-limit': 'codex_bengalfox', 'x-codex-bengalfox-limit-name': 'GPT-5.3-Codex-Spark', 'x-codex-bengalfox-primary-used-percent': '100' }
  }
}

test('a model-scoped limit rests the account for that model only; the exhausted answer names that limit', async () => {
  const h = await harness(2)
  const base = Math.floor(T0 / 1000)
  const spark = (): string => 'gpt-5.3-codex-spark'
  const up = upstream({ [h.ids[0]!]: [modelLimit(base + 600)], [h.ids[1]!]: [modelLimit(base + 900)] })
  const result = await h.pool.serve(up.send, { model: spark })
  assert.equal(result.kind, 'exhausted')
  const exhaustion = result.kind === 'exhausted' ? result.exhaustion : null
  assert.equal(exhaustion?.kind, 'limited')
  assert.equal(exhaustion?.kind === 'limited' && exhaustion.resetsAt, (base + 600) * 1000)
  assert.equal(exhaustion?.kind === 'limited' && exhaustion.limit?.name, 'GPT-5.3-Codex-Spark')
  const first = h.pool.get(h.ids[0]!)!
  assert.equal(first.disabledUntil, null, 'the account itself does not rest')
  assert.deepEqual(first.modelLimits.map((l) => [l.family, l.models, l.until]), [['codex_bengalfox', ['gpt-5.3-codex-spark'], (base + 600) * 1000]])
  const other = await h.pool.serve(up.send, { model: () => 'gpt-5-codex', prefer: h.ids[0] })
  assert.equal(other.kind === 'delivered' && other.account.id, h.ids[0], 'other models are still served by it')
  h.clock.t += 601_000
  const later = await h.pool.serve(up.send, { model: spark, prefer: h.ids[0] })
  assert.equal(later.kind === 'delivered' && later.account.id, h.ids[0], 'back for the model once its limit resets')
})

test('an overload or a usage limit in a stream before any content fails over; other stream errors are the request\'s', async () => {
  const h = await harness(2)
  interface Early { status: number, streamError: Record<string, unknown> | null }
  const early = (code: string, extra: Record<string, unknown> = {}): Early => ({ status: 200, streamError: { code, message: 'x', ...extra } })
  const send = (replies: Early[]) => async (lease: Lease): Promise<Sent<string>> => {
    const reply: Early = lease.account.id === h.ids[0] && replies.length > 0 ? replies.shift()! : { status: 200, streamError: null }
    return { answer: { status: reply.status, headers: {}, errorBody: null, streamError: reply.streamError }, value: lease.account.id }
  }
  const overloaded = await h.pool.serve(send([early('server_is_overloaded')]))
  assert.equal(overloaded.kind === 'delivered' && overloaded.account.id, h.ids[1])
  assert.equal(h.pool.get(h.ids[0]!)!.disabledKind, 'resting')
  await h.pool.enable(h.ids[0]!)
  await h.pool.select(h.ids[0]!)
  const limited = await h.pool.serve(send([early('usage_limit_reached', { resets_at: Math.floor(T0 / 1000) + 300 })]))
  assert.equal(limited.kind === 'delivered' && limited.account.id, h.ids[1])
  assert.equal(h.pool.get(h.ids[0]!)!.disabledKind, 'cooling')
  await h.pool.enable(h.ids[0]!)
  await h.pool.select(h.ids[0]!)
  const tooLong = await h.pool.serve(send([early('context_length_exceeded')]))
  assert.equal(tooLong.kind === 'delivered' && tooLong.account.id, h.ids[0], 'delivered as is')
})

test('4xx answers other than 401/403/429 (404, 409, 422…) are passed through: one attempt, the account untouched', async () => {
  for (const status of [404, 405, 409, 410, 413, 415, 422]) {
    const h = await harness(2)
    const up = upstream({ [h.ids[0]!]: [{ status, body: { detail: `status ${status}` } }] })
    const result = await h.pool.serve(up.send)
    assert.equal(result.kind === 'delivered' && result.value, `${h.ids[0]}:${status}`, `${status} is delivered as is`)
    assert.equal(result.attempts, 1, `${status}: one attempt`)
    const first = h.pool.get(h.ids[0]!)!
    assert.equal(first.disabledUntil, null, `${status}: not rested`)
    assert.equal(first.lastError, null, `${status}: no error recorded`)
    assert.equal(h.refresher.calls, 0, `${status}: no refresh`)
  }
})

test('the rotated tokens are saved before the refresh resolves and before any request uses them', async () => {
  const h = await harness(1, { expSeconds: Math.floor(T0 / 1000) + 10 })
  const events: string[] = []
  const save = h.store.save.bind(h.store)
  h.store.save = async (data) => {
    await save(data)
    events.push(`saved ${data.accounts[0]!.tokens.refreshToken}`)
  }
  await h.pool.serve(async (lease) => {
    events.push(`sent ${h.pool.get(h.ids[0]!)!.tokens.refreshToken}`)
    return { answer: { status: 200, headers: {}, errorBody: null }, value: lease.accessToken }
  })
  const rotated = h.pool.get(h.ids[0]!)!.tokens.refreshToken
  assert.notEqual(rotated, 'rt_accta_0')
  const savedAt = events.indexOf(`saved ${rotated}`)
  assert.ok(savedAt >= 0 && savedAt < events.indexOf(`sent ${rotated}`), `saved first: ${events.join(', ')}`)
})

test('no refresh token is spent while the state cannot be written', async () => {
  const h = await harness(1, { expSeconds: Math.floor(T0 / 1000) + 10 })
  h.store.failWith = Object.assign(new Error('no space'), { code: 'ENOSPC' })
  await assert.rejects(h.pool.refreshTokens(h.pool.get(h.ids[0]!)!), /token file cannot be written/)
  assert.equal(h.refresher.calls, 0, 'the issuer was never called')
  assert.equal(h.pool.get(h.ids[0]!)!.tokens.refreshToken, 'rt_accta_0')
  h.store.failWith = null
  await h.pool.refreshTokens(h.pool.get(h.ids[0]!)!)
  assert.equal(h.refresher.calls, 1)
})

/** Starts a refresh of `account` that answers only when the returned `answer()` is called. */
async function heldRefresh (h: Harness, account: Account): Promise<{ outcome: Promise<string>, answer: () => void }> {
  let open!: () => void
  h.refresher.gate = new Promise((resolve) => { open = resolve })
  const calls = h.refresher.calls
  const outcome = h.pool.refreshTokens(account).then(() => 'ok', () => 'failed')
  while (h.refresher.calls === calls) await new Promise((resolve) => setTimeout(resolve, 1))
  return { outcome, answer: open }
}

test('a sign-in imported while a refresh of the old token runs is kept when that refresh fails', async () => {
  const h = await harness(1)
  const account = h.pool.get(h.ids[0]!)!
  h.refresher.fail = new RefreshError('dead', 401, 'refresh_token_invalidated')
  const refresh = await heldRefresh(h, account)
  const fresh = tokenSetFor({ accountId: 'accta', email: 'a@example.com', serial: 50 })
  await h.pool.importTokens(fresh)
  refresh.answer()
  assert.equal(await refresh.outcome, 'failed')
  await h.store.flush()
  assert.equal(account.needsLogin, false, 'the fresh sign-in is not marked as needing a login')
  assert.equal(account.tokens.refreshToken, fresh.refreshToken)
  assert.equal(h.store.data.accounts[0]!.tokens.refreshToken, fresh.refreshToken)
  assert.equal(h.store.data.accounts[0]!.needsLogin, false)
})

test('a refresh that succeeds after a new sign-in landed does not overwrite it', async () => {
  const h = await harness(1)
  const account = h.pool.get(h.ids[0]!)!
  const refresh = await heldRefresh(h, account)
  const fresh = tokenSetFor({ accountId: 'accta', email: 'a@example.com', serial: 50 })
  await h.pool.importTokens(fresh)
  refresh.answer()
  assert.equal(await refresh.outcome, 'ok')
  await h.store.flush()
  assert.equal(account.tokens.refreshToken, fresh.refreshToken)
  assert.equal(h.store.data.accounts[0]!.tokens.refreshToken, fresh.refreshToken)
})

test('re-importing tokens the pool has already rotated is refused with 409 and changes nothing', async () => {
  const h = await harness(1)
  const original = tokenSetFor({ accountId: 'accta', email: 'a@example.com' })
  const account = h.pool.get(h.ids[0]!)!
  await h.pool.refreshTokens(account)
  const rotated = account.tokens
  const savesBefore = h.store.saves.length
  await assert.rejects(h.pool.importTokens(original), (err: Error & { statusCode?: number }) => {
    assert.equal(err.statusCode, 409)
    assert.match(err.message, /older than the pool's/)
    assert.match(err.message, /already used by the pool/)
    return true
  })
  assert.equal(account.tokens, rotated, 'the held tokens stay')
  await h.store.flush()
  assert.equal(h.store.saves.length, savesBefore, 'nothing written')
  const forced = await h.pool.importTokens({ ...original, force: true })
  assert.equal(forced.outcome, 'updated', 'forced, it is imported')
  assert.equal(account.tokens.refreshToken, original.refreshToken)
})

test('importing the very same tokens again is a no-op', async () => {
  const h = await harness(1)
  await h.store.flush()
  const savesBefore = h.store.saves.length
  const again = await h.pool.importTokens(tokenSetFor({ accountId: 'accta', email: 'a@example.com' }))
  assert.equal(again.outcome, 'unchanged')
  assert.equal(again.created, false)
  await h.store.flush()
  assert.equal(h.store.saves.length, savesBefore)
})

test('an import whose access token was issued before the held one is refused; a later one is taken', async () => {
  const h = await harness(0)
  const token = (iat: number, serial: number): { idToken: string, accessToken: string, refreshToken: string } => {
    const auth = { chatgpt_account_id: 'acctz', chatgpt_plan_type: 'plus', chatgpt_user_id: 'user-acctz' }
    return {
      idToken: makeJwt({ email: 'z@example.com', 'https://api.openai.com/auth': auth }),
      accessToken: makeJwt({ 'https://api.openai.com/auth': auth, iat, exp: iat + 864_000 }),
      refreshToken: `rt_acctz_${serial}`
    }
  }
  const iat = Math.floor(T0 / 1000)
  await h.pool.importTokens(token(iat, 1))
  await assert.rejects(h.pool.importTokens(token(iat - 60, 2)), /issued at/)
  assert.equal((await h.pool.importTokens(token(iat + 60, 3))).outcome, 'updated')
})

test('an account whose last refresh is older than 8 days is refreshed while it sits unused', async () => {
  const h = await harness(2)
  h.clock.t += 7 * 24 * HOUR
  assert.equal((await Promise.all(h.pool.keepAlive())).length, 0, 'not yet at 7 days')
  h.clock.t += 24 * HOUR + 1
  await Promise.all(h.pool.keepAlive())
  assert.equal(h.refresher.calls, 2, 'both, the unused one too')
  assert.equal(h.pool.get(h.ids[1]!)!.lastRefreshAt, h.clock.t)
  assert.equal((await Promise.all(h.pool.keepAlive())).length, 0, 'and then not again')
})

test('a cooling account gets a fresh access token shortly before its reset, so its first request does not wait', async () => {
  const h = await harness(2, { expSeconds: Math.floor(T0 / 1000) + 3600 })
  const resetsAt = Math.floor(T0 / 1000) + 3 * 3600
  await h.pool.serve(upstream({ [h.ids[0]!]: [usageLimit(resetsAt)] }).send)
  h.clock.t = resetsAt * 1000 - 10 * 60_000
  await Promise.all(h.pool.keepAlive())
  assert.equal(h.refresher.calls, 0, 'not 10 minutes before')
  h.clock.t = resetsAt * 1000 - 2 * 60_000
  await Promise.all(h.pool.keepAlive())
  assert.equal(h.refresher.calls, 1, 'the cooling one (an active account refreshes when a request needs it)')
  const cooled = h.pool.get(h.ids[0]!)!
  assert.ok(cooled.accessExpiresAt! > resetsAt * 1000, 'a token that outlives the reset')
  assert.equal(cooled.disabledKind, 'cooling', 'still resting until its reset')
})

test('a refresh is recorded as under way before the token is spent; a start after a crash mid-refresh says so', async () => {
  const h = await harness(1)
  const account = h.pool.get(h.ids[0]!)!
  const refresh = await heldRefresh(h, account)
  assert.equal(h.store.data.accounts[0]!.refreshingSince, T0, 'on disk before the issuer was called')
  // The process dies here: a new pool starts from what is on disk.
  const warnings: string[] = []
  const log = { info () {}, error () {}, warn (_obj: object, msg?: string) { warnings.push(msg ?? '') } }
  const restarted = await AccountPool.create({ store: new MemoryStore(structuredClone(h.store.data)), oauth: h.refresher, cooldownMs: 3 * HOUR, clock: h.clock, keepAliveEveryMs: 0, log })
  assert.match(restarted.get(h.ids[0]!)!.lastError ?? '', /refresh was under way when the service stopped/)
  assert.equal(warnings.length, 1)
  refresh.answer()
  assert.equal(await refresh.outcome, 'ok')
  await h.store.flush()
  assert.equal(h.store.data.accounts[0]!.refreshingSince, undefined, 'cleared with the rotated tokens')
})
