/*
 * Redis going away under traffic: the instances serve on with the tokens they hold, what they
 * change meanwhile is written when Redis is back, and a Redis restarted from its append-only file
 * (or even empty) gives the pool back intact.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { responsesBody } from '../helpers/stack.js'
import { eventually, startCluster, type Node } from '../helpers/cluster.js'
import { rawClient } from '../support/redis-server.js'

async function turn (node: Node, text: string, secret?: string): Promise<{ status: number, body: string }> {
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream', ...(secret === undefined ? {} : { authorization: `Bearer ${secret}` }) }
  const response = await fetch(`${node.url}/v1/responses`, { method: 'POST', headers, body: JSON.stringify(responsesBody(text)) })
  return { status: response.status, body: await response.text() }
}

test('Redis restarted mid-traffic: serving goes on, a rest taken meanwhile lands when it is back, the pool is intact', async (t) => {
  const { nodes: [a, b], addAccount, fake, redis } = await startCluster(t, { redis: { appendonly: true } })
  const one = await addAccount(a!, { email: 'one@example.com' })
  const two = await addAccount(a!, { email: 'two@example.com' })
  await eventually('b has both', () => b!.app.pool.list().length === 2)
  assert.equal((await turn(a!, 'before')).status, 200)

  let running = true
  const traffic = (async () => {
    const statuses: number[] = []
    for (let i = 0; running; i++) statuses.push((await turn(i % 2 === 0 ? a! : b!, `t${i}`)).status)
    return statuses
  })()
  await new Promise((resolve) => setTimeout(resolve, 100))
  await redis.stop()
  fake.backend.setExhausted(one.accountId, { resetsInSeconds: 3600 })
  const during = await turn(a!, 'while Redis is down')
  assert.equal(during.status, 200)
  assert.match(during.body, /served by two@example\.com/)
  assert.equal(a!.app.pool.get(one.id)!.disabledKind, 'cooling', 'a rests the account in memory')
  await redis.start()
  await eventually('b learns the rest once Redis is back', () => b!.app.pool.get(one.id)!.disabledKind === 'cooling', 5_000)
  running = false
  const statuses = await traffic
  assert.ok(statuses.length > 0)
  assert.deepEqual(statuses.filter((status) => status !== 200), [], 'every request was served')

  const raw = rawClient(t, redis.url)
  assert.deepEqual(await raw.zrange('cluster:accounts', 0, -1), [one.id, two.id])
  // The write that failed while Redis was away is retried once the connection is back.
  await eventually('the rest is in Redis', async () => /"disabledKind":"cooling"/.test(String(await raw.hget(`cluster:account:${one.id}`, 'state'))), 5_000)
  for (const node of [a!, b!]) assert.deepEqual(node.app.pool.list().map((account) => account.id), [one.id, two.id])
})

test('a Redis that comes back empty gets the pool written again from the instances\' memory', async (t) => {
  const { nodes: [a, b], addAccount, redis } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  await eventually('b has it', () => b!.app.pool.list().length === 1)
  await redis.kill() // no persistence: its data is gone
  await redis.start()
  const raw = rawClient(t, redis.url)
  await eventually('the account is back in Redis', async () => await raw.zcard('cluster:accounts') === 1, 5_000)
  assert.ok(await raw.hget(`cluster:account:${one.id}`, 'tokens') !== null)
  assert.equal((await turn(b!, 'after')).status, 200)
})

test('an instance that only mirrored the pool writes it back alone, with the client keys, and never lets an account go meanwhile', async (t) => {
  const { nodes: [a, b], addAccount, redis } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  const created = await fetch(`${a!.url}/keys`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'alice' }) })
  const { secret } = await created.json() as { secret: string }
  await eventually('b has the account and the key', async () => b!.app.pool.list().length === 1 && (await turn(b!, 'key', secret)).status === 200)
  await a!.stop() // b never saved anything of its own: what it knows it learned from Redis
  const sizes = new Set<number>()
  const watch = setInterval(() => { sizes.add(b!.app.pool.list().length) }, 5)
  t.after(() => { clearInterval(watch) })
  await redis.kill()
  await redis.start()
  const raw = rawClient(t, redis.url)
  await eventually('the account and the key are back in Redis', async () => await raw.zcard('cluster:accounts') === 1 && await raw.hlen('cluster:client-keys') === 1, 5_000)
  assert.ok(await raw.hget(`cluster:account:${one.id}`, 'tokens') !== null)
  await new Promise((resolve) => setTimeout(resolve, 300)) // b's read of the pool after the reconnection
  clearInterval(watch)
  assert.deepEqual([...sizes], [1], 'b kept the account all along')
  assert.equal((await turn(b!, 'after', secret)).status, 200)
  assert.equal((await turn(b!, 'no key')).status, 401)
  assert.ok(b!.logs.some((line) => /Redis came back without the pool/.test(String(line.msg))))
})

test('Redis down and a token that must be refreshed: no refresh without the lease, the client gets a 503 to retry', async (t) => {
  const { nodes: [a, b], addAccount, fake, redis } = await startCluster(t, { fake: { accessTokenTtlSec: 2 } })
  const one = await addAccount(a!, { email: 'one@example.com' })
  await eventually('b has it', () => b!.app.pool.list().length === 1)
  await redis.stop()
  await eventually('the access token is dead', () => b!.app.pool.get(one.id)!.accessExpiresAt! <= Date.now(), 3_000)
  const answer = await fetch(`${b!.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(responsesBody('needs a refresh')) })
  assert.equal(answer.status, 503, await answer.text())
  assert.ok(answer.headers.get('retry-after') !== null)
  assert.equal(fake.issuer.refreshCalls, 0, 'no refresh token was spent without the lease')
  assert.ok(b!.logs.some((line) => /token refresh postponed: the shared store is unreachable/.test(String(line.msg))), 'the postponed refresh is logged')
  await redis.start() // the instances' stop writes what is pending // the instances' stop writes what is pending
})
