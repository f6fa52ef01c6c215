/*
 * The usage ledger of a shared pool adds up every instance's answers: the usage report and a
 * key's tokens today are the same on every instance, within a couple of seconds.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { responsesBody } from '../helpers/stack.js'
import { eventually, startCluster, type Node } from '../helpers/cluster.js'
import { rawClient } from '../support/redis-server.js'

async function turn (node: Node, secret: string): Promise<number> {
  const response = await fetch(`${node.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${secret}` }, body: JSON.stringify(responsesBody('counted')) })
  await response.text()
  return response.status
}

test('usage served by two instances adds up in the report and in a key\'s tokens today on both', async (t) => {
  const { nodes: [a, b], addAccount, redis } = await startCluster(t)
  await addAccount(a!, { email: 'one@example.com' })
  await eventually('b has the account', () => b!.app.pool.list().length === 1)
  const created = await (await fetch(`${a!.url}/keys`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'team' }) })).json() as { secret: string }
  await eventually('b knows the key', async () => await turn(b!, created.secret) === 200)
  for (let i = 0; i < 3; i++) assert.equal(await turn(a!, created.secret), 200)
  for (let i = 0; i < 2; i++) assert.equal(await turn(b!, created.secret), 200)
  const requestsOn = async (node: Node): Promise<number> => ((await (await fetch(`${node.url}/usage?by=key`)).json()) as { totals: { requests: number } }).totals.requests
  const tokensToday = async (node: Node): Promise<number> => ((await (await fetch(`${node.url}/keys`)).json()) as Array<{ name: string, tokens_today: number }>).find((key) => key.name === 'team')!.tokens_today
  await eventually('both reports count all six answers', async () => await requestsOn(a!) === 6 && await requestsOn(b!) === 6, 4_000)
  const today = await tokensToday(a!)
  assert.ok(today > 0)
  assert.equal(await tokensToday(b!), today, 'the key\'s tokens today are the same on both instances')
  const raw = rawClient(t, redis.url)
  assert.ok((await raw.keys('cluster:usage:*')).length > 0, 'the counts are kept in Redis')
})
