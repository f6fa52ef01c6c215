import { test } from 'node:test'
import assert from 'node:assert/strict'
import { accountOfTurnState } from '../fakes/index.js'
import { doneItemOf } from '../helpers/sse-items.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'

const user = (text: string): Record<string, unknown> => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] })
const said = (text: string): Record<string, unknown> => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] })

async function turn (stack: Stack, input: unknown[], headers: Record<string, string>): Promise<{ response: Response, text: string }> {
  const response = await postResponses(stack, responsesBody('x', { input }), headers)
  return { response, text: await response.text() }
}

/** Two accounts; a conversation served by the first, whose reasoning the next turn replays. */
async function conversationOnA (stack: Stack, session: Record<string, string>): Promise<{ a: { accountId: string, id: string }, b: { accountId: string, id: string }, history: unknown[] }> {
  const a = await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  const first = await turn(stack, [user('first question')], session)
  assert.match(first.text, /served by a@example.com/)
  return { a, b, history: [user('first question'), doneItemOf(first.text, 'reasoning'), said('answer one')] }
}

test('a conversation that moves drops exactly the foreign blobs up front: no refused call, the new account\'s own reasoning stays', async (t) => {
  const stack = await startStack(t)
  const session = { 'session-id': 'moving' }
  const { a, b, history } = await conversationOnA(stack, session)
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600 })
  const calls = stack.fake.backend.requests.length
  const moved = await turn(stack, [...history, user('second question')], session)
  assert.match(moved.text, /served by b@example.com: second question/)
  assert.equal(moved.response.headers.get('x-codex-eq-blobs-dropped'), '1')
  const sent = stack.fake.backend.requests.slice(calls)
  assert.deepEqual(sent.map((r) => [r.accountId, r.status]), [[a.accountId, 429], [b.accountId, 200]], 'no call refused for invalid_encrypted_content')
  assert.deepEqual(sent[1]!.blobs, [])

  // The next turn replays A's reasoning and B's own: only A's goes.
  const next = [...history, user('second question'), doneItemOf(moved.text, 'reasoning'), said('answer two'), user('third question')]
  const third = await turn(stack, next, session)
  assert.match(third.text, /served by b@example.com: third question/)
  const last = stack.fake.backend.requests.at(-1)!
  assert.equal(last.status, 200)
  assert.deepEqual(last.blobs, [{ where: 'reasoning', owner: b.accountId }], 'the new account\'s own reasoning is kept')
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  assert.match(metrics, /codex_eq_blobs_dropped_total 2/)
})

test('a moved conversation carrying a compaction item (remote compaction) succeeds on the new account', async (t) => {
  const stack = await startStack(t)
  const session = { 'session-id': 'compacted' }
  const a = await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  const compact = await fetch(`${stack.url}/v1/responses/compact`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...session },
    body: JSON.stringify({ model: 'gpt-5-codex', input: [user('a long story')], instructions: 'x', tools: [], parallel_tool_calls: false })
  })
  assert.equal(compact.status, 200)
  const { output } = await compact.json() as { output: Array<Record<string, unknown>> }
  const compaction = output.at(-1)!
  assert.equal(compaction.type, 'compaction')
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600 })
  const moved = await turn(stack, [compaction, user('go on')], session)
  assert.equal(moved.response.status, 200)
  assert.match(moved.text, /served by b@example.com: go on/)
  assert.equal(moved.response.headers.get('x-codex-eq-blobs-dropped'), '1')
  assert.equal(stack.fake.backend.requests.filter((r) => r.status === 400).length, 0)
  assert.equal(stack.fake.backend.requests.at(-1)!.accountId, b.accountId)
})

test('encrypted parts inside other items (agent messages) are dropped one by one when their conversation moves', async (t) => {
  const stack = await startStack(t)
  stack.fake.backend.streamOptions.agentMessage = true
  const session = { 'session-id': 'agents' }
  const { a, b, history } = await conversationOnA(stack, session)
  const first = stack.fake.backend.requests.at(-1)!
  assert.equal(first.accountId, a.accountId)
  // Rebuild the agent message the first turn streamed, with a plain text part beside the encrypted one.
  const agent = { type: 'agent_message', content: [{ type: 'encrypted_content', encrypted_content: '' }, { type: 'input_text', text: 'kept' }] }
  const streamed = await turn(stack, [...history, user('agents please')], session)
  const agentItem = doneItemOf(streamed.text, 'agent_message') as { content: Array<Record<string, unknown>> }
  agent.content[0] = agentItem.content[0] as { type: string, encrypted_content: string }
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600 })
  const moved = await turn(stack, [...history, agent, user('now elsewhere')], session)
  assert.match(moved.text, /served by b@example.com: now elsewhere/)
  const sent = stack.fake.backend.requests.at(-1)!
  assert.equal(sent.accountId, b.accountId)
  const sentAgent = (sent.body.input as Array<Record<string, any>>).find((item) => item.type === 'agent_message')
  assert.deepEqual(sentAgent?.content, [{ type: 'input_text', text: 'kept' }], 'only the encrypted part went')
})

test('blobs never seen (e.g. made before a restart) keep the fallback: one refused call, then without them', async (t) => {
  const stack = await startStack(t)
  const session = { 'session-id': 'restarted' }
  const { a, b, history } = await conversationOnA(stack, session)
  await stack.restart() // the pool forgets which account made which blob
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600 })
  const calls = stack.fake.backend.requests.length
  const moved = await turn(stack, [...history, user('after restart')], session)
  assert.match(moved.text, /served by b@example.com: after restart/)
  assert.deepEqual(stack.fake.backend.requests.slice(calls).map((r) => [r.accountId, r.status]), [[a.accountId, 429], [b.accountId, 400], [b.accountId, 200]])
})

test('a turn state issued by one account is never sent to another', async (t) => {
  const stack = await startStack(t)
  const session = { 'session-id': 'turning' }
  const { a, b, history } = await conversationOnA(stack, session)
  const issued = stack.fake.backend.requests.at(-1)!
  assert.equal(issued.accountId, a.accountId)
  const firstAnswer = await postResponses(stack, responsesBody('tool follow-up', { input: history }), session)
  await firstAnswer.text()
  const turnState = firstAnswer.headers.get('x-codex-turn-state')!
  assert.equal(accountOfTurnState(turnState), a.accountId)
  // Same turn, same account: echoed as the client sent it.
  await turn(stack, [...history, user('follow-up')], { ...session, 'x-codex-turn-state': turnState })
  assert.equal(stack.fake.backend.requests.at(-1)!.turnState, turnState)
  // The account runs out mid-turn: the follow-up goes to the next account without A's turn state.
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600 })
  const moved = await turn(stack, [...history, user('follow-up two')], { ...session, 'x-codex-turn-state': turnState })
  assert.match(moved.text, /served by b@example.com/)
  const sentToB = stack.fake.backend.requests.at(-1)!
  assert.equal(sentToB.accountId, b.accountId)
  assert.equal(sentToB.turnState, undefined)
  assert.equal(accountOfTurnState(moved.response.headers.get('x-codex-turn-state') ?? ''), b.accountId, 'the client gets B\'s own')
  const line = stack.logs.filter((entry) => entry.msg === 'proxied').at(-1)!
  assert.equal(line.turnStateDropped, true)
  assert.equal(line.blobsDropped, 1)
})
