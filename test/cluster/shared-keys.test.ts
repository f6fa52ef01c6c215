/*
 * Client keys made at run time are shared by the instances of one pool: a key made on one is
 * accepted by the others within a second, and a key deleted on one is refused by all.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { responsesBody } from '../helpers/stack.js'
import { eventually, startCluster, type Node } from '../helpers/cluster.js'

async function status (node: Node, secret?: string): Promise<number> {
  const response = await fetch(`${node.url}/v1/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(secret === undefined ? {} : { authorization: `Bearer ${secret}` }) },
    body: JSON.stringify(responsesBody('with a key'))
  })
  await response.text()
  return response.status
}

test('a client key made on one instance is accepted by the other; deleted there, it is refused everywhere', async (t) => {
  const { nodes: [a, b], addAccount } = await startCluster(t)
  await addAccount(a!, { email: 'one@example.com' })
  await eventually('b has the account', () => b!.app.pool.list().length === 1)
  const created = await fetch(`${a!.url}/keys`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'alice' }) })
  assert.equal(created.status, 201)
  const { id, secret } = await created.json() as { id: string, secret: string }
  const ms = await eventually('b accepts the key', async () => await status(b!, secret) === 200)
  assert.ok(ms < 1000, `in ${ms} ms`)
  assert.equal(await status(b!), 401, 'b now requires a key')
  assert.ok(((await (await fetch(`${b!.url}/keys`)).json()) as Array<{ name: string }>).some((key) => key.name === 'alice'))
  const other = await (await fetch(`${a!.url}/keys`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bob' }) })).json() as { secret: string }
  await eventually('b accepts the second key', async () => await status(b!, other.secret) === 200)
  assert.equal((await fetch(`${a!.url}/keys/${id}`, { method: 'DELETE' })).status, 204)
  await eventually('b refuses the deleted key', async () => await status(b!, secret) === 401)
  assert.equal(await status(b!, other.secret), 200, 'the other key still works')
})
