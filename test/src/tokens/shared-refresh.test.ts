/*
 * The refresh coordinator across instances: two pools on one real Redis, a fake issuer whose refresh
 * tokens are single use. Whatever the timing, a refresh token is spent once.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { AccountPool } from '../../../src/pool/account-pool.js'
import { RedisStore } from '../../../src/store/redis-store.js'
import { RefreshError } from '../../../src/tokens/oauth-client.js'
import type { RefreshedTokens } from '../../../src/tokens/token-answer.js'
import { tokenFingerprint } from '../../../src/tokens/token-lineage.js'
import { tokenSetFor } from '../../helpers/tokens.js'
import { rawClient, startRedis, type RedisServer } from '../../support/redis-server.js'
import { lifo } from '../../helpers/lifo.js'

const HOUR = 3_600_000

/** Single-use refresh tokens; counts every spend of every token. */
class SharedIssuer {
  spends = new Map<string, number>()
  delayMs = 0
  private serial = 100
  async refresh (refreshToken: string): Promise<RefreshedTokens> {
    this.spends.set(refreshToken, (this.spends.get(refreshToken) ?? 0) + 1)
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs))
    if (this.spends.get(refreshToken)! > 1) throw new RefreshError('reused', 401, 'refresh_token_reused')
    const accountId = refreshToken.split('_')[1]!
    const tokens = tokenSetFor({ accountId, email: `${accountId}@example.com`, expSeconds: Math.floor((Date.now() + HOUR) / 1000), serial: ++this.serial })
    return { idToken: tokens.idToken, accessToken: tokens.accessToken, refreshToken: tokens.refreshToken }
  }

  get total (): number {
    return [...this.spends.values()].reduce((a, b) => a + b, 0)
  }
}

async function instance (t: Pick<TestContext, 'after'>, server: RedisServer, name: string, issuer: SharedIssuer, o: { leaseMs?: number, heartbeatMs?: number } = {}): Promise<{ pool: AccountPool, store: RedisStore }> {
  const store = await RedisStore.open({ url: server.url, prefix: 'sr:', instance: name, leaseMs: o.leaseMs ?? 5_000, heartbeatMs: o.heartbeatMs ?? 200 })
  const pool = await AccountPool.create({ store, oauth: issuer, cooldownMs: 3 * HOUR, statsFlushMs: 0, keepAliveEveryMs: 0 })
  t.after(async () => {
    await pool.close()
    await store.close()
  })
  return { pool, store }
}

async function until (what: string, check: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function twoInstances (t: TestContext, o: { leaseMs?: number } = {}): Promise<{ issuer: SharedIssuer, a: AccountPool, b: AccountPool, id: string, server: RedisServer }> {
  const cleanup = lifo(t)
  const server = await startRedis(cleanup)
  const issuer = new SharedIssuer()
  const { pool: a } = await instance(cleanup, server, 'a', issuer, o)
  const { pool: b } = await instance(cleanup, server, 'b', issuer, o)
  const { account } = await a.importTokens(tokenSetFor({ accountId: 'acct1', email: 'one@example.com', serial: 1 }))
  await until('the import reaches b', () => b.get(account.id) !== undefined)
  return { issuer, a, b, id: account.id, server }
}

test('both instances refreshing one account at once: one spend, and both end with the same new tokens', async (t) => {
  const { issuer, a, b, id } = await twoInstances(t)
  issuer.delayMs = 200
  await Promise.all([a.refreshTokens(a.get(id)!), b.refreshTokens(b.get(id)!)])
  assert.equal(issuer.total, 1, 'one spend of the refresh token across both instances')
  assert.equal(b.get(id)!.tokens.refreshToken, a.get(id)!.tokens.refreshToken)
  assert.notEqual(a.get(id)!.tokens.refreshToken, 'rt_acct1_1')
  assert.equal(a.get(id)!.needsLogin, false)
})

test('a lease that expires during a slow refresh does not lead to a second spend: the spending marker holds the others back', async (t) => {
  const { issuer, a, b, id } = await twoInstances(t, { leaseMs: 150 })
  issuer.delayMs = 800 // far beyond the lease
  const first = a.refreshTokens(a.get(id)!)
  await until('a is at the issuer', () => issuer.total === 1)
  await new Promise((resolve) => setTimeout(resolve, 300)) // a's lease is gone now
  const second = b.refreshTokens(b.get(id)!)
  await Promise.all([first, second])
  assert.equal(issuer.total, 1, 'b waited for a\'s commit instead of spending the marked token')
  assert.equal(b.get(id)!.tokens.refreshToken, a.get(id)!.tokens.refreshToken)
  assert.equal(b.get(id)!.needsLogin, false)
})

test('a spending marker left by an instance that died is cleared (said on the account) and the token is spent then', async (t) => {
  const { server, issuer, b, id } = await twoInstances(t)
  const raw = rawClient(t, server.url)
  const marker = { fingerprint: tokenFingerprint('rt_acct1_1'), instance: 'ghost', since: Date.now() - 60_000 }
  await raw.hset(`sr:account:${id}`, 'spending', JSON.stringify(marker))
  await b.refreshTokens(b.get(id)!)
  assert.equal(issuer.total, 1)
  assert.match(String(b.get(id)!.lastError), /refresh was under way when instance ghost stopped/)
  assert.equal(await raw.hget(`sr:account:${id}`, 'spending'), null)
})

test('another instance\'s rotation is adopted without a spend: the stored token differs from the one held', async (t) => {
  const { issuer, a, b, id } = await twoInstances(t)
  await a.refreshTokens(a.get(id)!)
  await until('b mirrored the rotation', () => b.get(id)!.tokens.refreshToken === a.get(id)!.tokens.refreshToken)
  assert.equal(issuer.total, 1)
})

test('no lease without Redis: a refresh is not attempted, and is said to be postponed', async (t) => {
  const { server, issuer, b, id } = await twoInstances(t)
  await server.kill()
  await assert.rejects(b.refreshTokens(b.get(id)!), /shared store is unreachable/)
  assert.equal(issuer.total, 0)
  await server.start() // the instances' stop writes what is pending
})
