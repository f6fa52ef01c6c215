/*
 * Two instances of the real app on one real Redis: one pool. What one instance learns (an account,
 * a rest, the sticky choice) every instance knows within a second, without a round trip per request.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { responsesBody } from '../helpers/stack.js'
import { doneItemOf } from '../helpers/sse-items.js'
import { eventually, startCluster, type Node } from '../helpers/cluster.js'
import { rawClient } from '../support/redis-server.js'

async function turn (node: Node, text: string): Promise<{ status: number, body: string }> {
  const response = await fetch(`${node.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(responsesBody(text)) })
  return { status: response.status, body: await response.text() }
}

async function accounts (node: Node): Promise<Array<Record<string, unknown>>> {
  return await (await fetch(`${node.url}/accounts`)).json() as Array<Record<string, unknown>>
}

test('an account imported on one instance is served by the other', async (t) => {
  const { nodes: [a, b], addAccount } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  await eventually('b lists the account', async () => (await accounts(b!)).some((view) => view.id === one.id))
  const answer = await turn(b!, 'hello from b')
  assert.equal(answer.status, 200)
  assert.match(answer.body, /served by one@example\.com: hello from b/)
})

test('a usage limit met on one instance is respected by the other within a second, which never tries that account', async (t) => {
  const { nodes: [a, b], addAccount, fake } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  const two = await addAccount(a!, { email: 'two@example.com' })
  await eventually('b has both', () => b!.app.pool.list().length === 2)
  assert.match((await turn(b!, 'warm up')).body, /served by one@example\.com/)
  fake.backend.setExhausted(one.accountId, { resetsInSeconds: 3600 })
  assert.match((await turn(a!, 'fails over')).body, /served by two@example\.com/)
  const ms = await eventually('b sees the rest of account one', () => b!.app.pool.get(one.id)!.disabledKind === 'cooling')
  assert.ok(ms < 1000, `mirrored in ${ms} ms`)
  const triedOne = fake.backend.requests.filter((request) => request.headers['chatgpt-account-id'] === one.accountId).length
  const answer = await turn(b!, 'on b')
  assert.match(answer.body, /served by two@example\.com: on b/)
  assert.equal(fake.backend.requests.filter((request) => request.headers['chatgpt-account-id'] === one.accountId).length, triedOne, 'b did not try the resting account')
  assert.equal(b!.app.pool.stickyId(), two.id, 'the sticky choice moved on b too')
  const view = (await accounts(b!)).find((entry) => entry.id === one.id)!
  assert.equal(view.status, 'cooling')
})

test('two instances failing over at the same moment agree on the next account and do not flap', async (t) => {
  const { nodes: [a, b], addAccount, fake, redis } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  const two = await addAccount(a!, { email: 'two@example.com' })
  const three = await addAccount(a!, { email: 'three@example.com' })
  await eventually('b has all three', () => b!.app.pool.list().length === 3)
  await turn(a!, 'warm up')
  await eventually('b follows the sticky choice', () => b!.app.pool.stickyId() === one.id)
  fake.backend.setExhausted(one.accountId, { resetsInSeconds: 3600 })
  const answers = await Promise.all([turn(a!, 'a at once'), turn(b!, 'b at once'), turn(a!, 'a again'), turn(b!, 'b again')])
  for (const answer of answers) assert.match(answer.body, /served by two@example\.com/)
  const raw = rawClient(t, redis.url)
  await eventually('every instance and Redis agree', async () => a!.app.pool.stickyId() === two.id && b!.app.pool.stickyId() === two.id && await raw.get('cluster:sticky') === two.id)
  for (let i = 0; i < 4; i++) assert.match((await turn(i % 2 === 0 ? a! : b!, `steady ${i}`)).body, /served by two@example\.com/)
  assert.equal(fake.backend.requests.filter((request) => request.headers['chatgpt-account-id'] === three.accountId).length, 0, 'nobody moved on to the third')
})

test('serving makes no Redis round trip per request: request counters are written in batches', async (t) => {
  const { nodes: [a, b], addAccount, redis } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  await eventually('b has it', () => b!.app.pool.list().length === 1)
  await turn(a!, 'warm up')
  const raw = rawClient(t, redis.url)
  const commands = async (): Promise<number> => Number((await raw.info('stats')).match(/total_commands_processed:(\d+)/)![1])
  const before = await commands()
  // 100 requests in a burst, 10 at a time, over both instances: what Redis sees is batched by time, not by request.
  const statuses: number[] = []
  await Promise.all(Array.from({ length: 10 }, async (_, lane) => {
    for (let i = 0; i < 10; i++) statuses.push((await turn(lane % 2 === 0 ? a! : b!, `n${lane}-${i}`)).status)
  }))
  const used = await commands() - before
  assert.deepEqual(statuses.filter((status) => status !== 200), [])
  t.diagnostic(`${used} Redis commands for 100 requests`)
  assert.ok(used < 100, `${used} Redis commands for 100 requests: fewer than one per request`)
  await eventually('the counters add up across instances', async () => Number(await raw.hget(`cluster:account:${one.id}`, 'requests')) === 101, 3_000)
  await eventually('both instances show the cluster total', () => a!.app.pool.get(one.id)!.requests === 101 && b!.app.pool.get(one.id)!.requests === 101, 3_000)
})

test('a conversation whose next turn lands on another instance stays on its account', async (t) => {
  const { nodes: [a, b], addAccount } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  const two = await addAccount(a!, { email: 'two@example.com' })
  await eventually('b has both', () => b!.app.pool.list().length === 2)
  const first = await fetch(`${a!.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(responsesBody('turn one', { prompt_cache_key: 'conv-shared' })) })
  assert.match(await first.text(), /served by one@example\.com/)
  // The sticky choice moves to two everywhere: only the conversation's owner keeps it on one.
  assert.equal((await fetch(`${a!.url}/accounts/${two.id}/select`, { method: 'POST' })).status, 200)
  await eventually('b follows the sticky choice', () => b!.app.pool.stickyId() === two.id)
  await new Promise((resolve) => setTimeout(resolve, 500)) // the conversation notice is batched (200 ms)
  const next = await fetch(`${b!.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(responsesBody('turn two', { prompt_cache_key: 'conv-shared' })) })
  assert.match(await next.text(), /served by one@example\.com: turn two/, 'b kept the conversation on its account')
  assert.ok(b!.app.pool.get(one.id) !== undefined)
})

test('GET /accounts names the instance that last served with each account; /metrics carries the codex_eq_instance label', async (t) => {
  const { nodes: [a, b], addAccount } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  await eventually('b has it', () => b!.app.pool.list().length === 1)
  assert.equal((await turn(a!, 'on a')).status, 200)
  await eventually('b shows who served last', async () => (await accounts(b!)).find((view) => view.id === one.id)?.last_served_by === 'node-a', 3_000)
  const view = (await accounts(b!)).find((entry) => entry.id === one.id)!
  assert.equal(view.refresh_lease_holder, null)
  const onA = await (await fetch(`${a!.url}/metrics`)).text()
  assert.match(onA, /^codex_eq_requests_total\{[^}]*codex_eq_instance="node-a"[^}]*\} 1$/m, 'a counted the request it served')
  const onB = await (await fetch(`${b!.url}/metrics`)).text()
  assert.match(onB, /^codex_eq_open_streams\{codex_eq_instance="node-b"\} 0$/m)
  for (const metrics of [onA, onB]) assert.doesNotMatch(metrics, /[{,]instance=/, 'no label clashes with the target label Prometheus adds')
})

test('a conversation that moves on another instance drops the blobs its old account made there too: no refused call', async (t) => {
  const { nodes: [a, b], addAccount, fake } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  const two = await addAccount(a!, { email: 'two@example.com' })
  await eventually('b has both', () => b!.app.pool.list().length === 2)
  const session = { 'session-id': 'moving-across' }
  const user = (text: string): Record<string, unknown> => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] })
  const post = async (node: Node, input: unknown[]): Promise<string> => {
    const response = await fetch(`${node.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...session }, body: JSON.stringify(responsesBody('x', { input })) })
    return await response.text()
  }
  const first = await post(a!, [user('first question')])
  assert.match(first, /served by one@example\.com/)
  const history = [user('first question'), doneItemOf(first, 'reasoning'), { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'answer one' }] }]
  fake.backend.setExhausted(one.accountId, { resetsInSeconds: 600 })
  await new Promise((resolve) => setTimeout(resolve, 500)) // what a learned is sent in batches (200 ms)
  const calls = fake.backend.requests.length
  const moved = await post(b!, [...history, user('second question')])
  assert.match(moved, /served by two@example\.com: second question/)
  const sent = fake.backend.requests.slice(calls)
  assert.deepEqual(sent.map((request) => [request.accountId, request.status]), [[one.accountId, 429], [two.accountId, 200]], 'no call refused for invalid_encrypted_content')
  assert.deepEqual(sent[1]!.blobs, [])
})

test('GET /accounts on every instance shows which instance holds an account\'s refresh lease', async (t) => {
  const { nodes: [a, b], addAccount, fake } = await startCluster(t)
  const one = await addAccount(a!, { email: 'one@example.com' })
  await eventually('b has it', () => b!.app.pool.list().length === 1)
  fake.issuer.delayRefreshMs = 800
  const refreshing = fetch(`${a!.url}/accounts/${one.id}/refresh`, { method: 'POST' })
  await eventually('b shows a holding the lease', async () => (await accounts(b!)).find((view) => view.id === one.id)?.refresh_lease_holder === 'node-a')
  assert.equal((await refreshing).status, 200)
  await eventually('the lease is gone on b too', async () => (await accounts(b!)).find((view) => view.id === one.id)?.refresh_lease_holder === null)
})
