/*
 * A refresh storm split across instances: every access token is about to die and requests for every
 * account arrive at every instance at once. Each account's refresh token is spent exactly once.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { responsesBody } from '../helpers/stack.js'
import { eventually, startCluster, type Node } from '../helpers/cluster.js'

async function turn (node: Node, text: string, prefer: string): Promise<{ status: number, body: string }> {
  const response = await fetch(`${node.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(responsesBody(text, { prompt_cache_key: prefer })) })
  return { status: response.status, body: await response.text() }
}

test('a refresh storm across three instances rotates each account exactly once', async (t) => {
  // Access tokens with 20 s left: inside the 30 s below which a request waits for the refresh.
  const { nodes, addAccount, fake } = await startCluster(t, { instances: 3, fake: { accessTokenTtlSec: 20 } })
  const emails = ['one@example.com', 'two@example.com', 'three@example.com']
  const added: Array<{ id: string, email: string }> = []
  for (const email of emails) added.push(await addAccount(nodes[0]!, { email }))
  for (const node of nodes) await eventually(`${node.name} has all three`, () => node.app.pool.list().length === 3)
  fake.issuer.accessTokenTtlSec = 3600 // the rotated ones live long: one rotation each
  fake.issuer.delayRefreshMs = 300 // slow enough that every instance asks while the first refresh is out
  // Requests on every instance, and every instance asking to refresh every account, all at once.
  const turns: Array<Promise<{ status: number, body: string }>> = []
  for (const [index, node] of nodes.entries()) {
    for (let i = 0; i < 4; i++) turns.push(turn(node, `${node.name} ${i}`, `conv-${index}-${i}`))
  }
  for (const account of added) {
    for (const node of nodes) void node.app.pool.refreshTokens(node.app.pool.get(account.id)!).catch(() => {})
  }
  const answers = await Promise.all(turns)
  for (const answer of answers) assert.equal(answer.status, 200, answer.body)
  await eventually('every instance holds the rotated tokens', () => nodes.every((node) => added.every((account) => node.app.pool.get(account.id)!.accessExpiresAt! > Date.now() + 60_000)), 5_000)
  assert.equal(fake.issuer.refreshCalls, 3, 'one refresh per account across all instances')
  for (const node of nodes) {
    for (const account of added) {
      const held = node.app.pool.get(account.id)!
      assert.equal(held.needsLogin, false, `${node.name}: ${account.email} needs no login`)
      assert.equal(held.tokens.refreshToken, nodes[0]!.app.pool.get(account.id)!.tokens.refreshToken, `${node.name} adopted the same tokens`)
    }
  }
})
