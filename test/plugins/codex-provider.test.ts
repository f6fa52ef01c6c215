import { test } from 'node:test'
import assert from 'node:assert/strict'
import { doneItemOf } from '../helpers/sse-items.js'
import { responsesBody, rawGetStatus, startStack, type Stack } from '../helpers/stack.js'
import { zstdBomb, zstdFrame } from '../helpers/zstd-frame.js'

/** Codex's built-in provider (`openai_base_url = "http://HOST:PORT/backend-api/codex"`, protocol §5.6). */
const BUILT_IN = '/backend-api/codex'

const user = (text: string): Record<string, unknown> => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] })

function post (stack: Stack, path: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers }, body })
}

test('/backend-api/codex/* serves like /v1/*: same account credentials, same failover, same API keys', async (t) => {
  const stack = await startStack(t, { settings: { apiKey: ['client-key-0123456789'], adminToken: 'admin-token-0123456789' } })
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com' })
  const body = JSON.stringify(responsesBody('built in'))
  assert.equal((await post(stack, `${BUILT_IN}/responses`, body)).status, 401, 'an API key is needed here too')
  assert.equal(stack.fake.backend.requests.length, 0)

  stack.fake.backend.setExhausted(first.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 3600, via: 'body' })
  const response = await post(stack, `${BUILT_IN}/responses`, body, { authorization: 'Bearer client-key-0123456789' })
  assert.equal(response.status, 200)
  assert.match(await response.text(), /served by second@example.com: built in/)
  assert.equal(response.headers.get('x-codex-eq-account'), second.id)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')
  const seen = stack.fake.backend.requests.at(-1)!
  assert.equal(seen.path, '/backend-api/codex/responses')
  assert.equal(seen.headers.authorization, `Bearer ${second.tokens.access_token}`)

  // And /v1 stays, on the same sticky account.
  const v1 = await post(stack, '/v1/responses', body, { authorization: 'Bearer client-key-0123456789' })
  assert.match(await v1.text(), /served by second@example.com/)
})

test('paths under /backend-api/codex cannot leave the upstream base either', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  for (const path of [`${BUILT_IN}/../../wham/usage`, `${BUILT_IN}/%2e%2e/x`, `${BUILT_IN}//x`, `${BUILT_IN}/a%5c..%5cb`]) {
    assert.equal(await rawGetStatus(stack, path), 400, path)
  }
  assert.equal(stack.fake.backend.requests.length, 0)
})

test('remote compaction goes through the ladder, and its compaction item is known as the serving account\'s', async (t) => {
  const stack = await startStack(t)
  const session = { 'session-id': 'compact-ladder' }
  const a = await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600, via: 'body' })
  const compactBody = JSON.stringify({ model: 'gpt-5-codex', input: [user('a long story')], instructions: 'x', tools: [], parallel_tool_calls: false })
  const compact = await post(stack, `${BUILT_IN}/responses/compact`, compactBody, { ...session, accept: 'application/json' })
  assert.equal(compact.status, 200)
  assert.equal(compact.headers.get('x-codex-eq-account'), b.id)
  assert.equal(compact.headers.get('x-codex-eq-attempts'), '2')
  const { output } = await compact.json() as { output: Array<Record<string, unknown>> }
  const compaction = output.at(-1)!
  assert.equal(compaction.type, 'compaction')
  assert.deepEqual(stack.fake.backend.requests.map((r) => [r.path, r.accountId, r.status]), [
    ['/backend-api/codex/responses/compact', a.accountId, 429],
    ['/backend-api/codex/responses/compact', b.accountId, 200]
  ])

  // B runs out, A is back: the compacted conversation moves, and only B's compaction item is dropped, up front.
  stack.fake.backend.setExhausted(a.accountId, null)
  assert.equal((await fetch(`${stack.url}/accounts/${a.id}/enable`, { method: 'POST' })).status, 200)
  stack.fake.backend.setExhausted(b.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600, via: 'body' })
  const calls = stack.fake.backend.requests.length
  const moved = await post(stack, `${BUILT_IN}/responses`, JSON.stringify(responsesBody('x', { input: [compaction, user('go on')] })), session)
  const text = await moved.text()
  assert.match(text, /served by a@example.com: go on/)
  assert.equal(moved.headers.get('x-codex-eq-blobs-dropped'), '1')
  assert.deepEqual(stack.fake.backend.requests.slice(calls).map((r) => [r.accountId, r.status]), [[b.accountId, 429], [a.accountId, 200]], 'no call refused for invalid_encrypted_content')
})

test('a zstd body is decoded: its conversation is recognised and a moved conversation loses its foreign blobs', async (t) => {
  const stack = await startStack(t)
  const session = { 'session-id': 'zstd-move' }
  const a = await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  const first = await post(stack, `${BUILT_IN}/responses`, zstdFrame(Buffer.from(JSON.stringify(responsesBody('x', { input: [user('first')] })))), { ...session, 'content-encoding': 'zstd' })
  const firstText = await first.text()
  assert.equal(first.status, 200)
  assert.match(firstText, /served by a@example.com: first/)
  const history = [user('first'), doneItemOf(firstText, 'reasoning'), user('second')]
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600, via: 'body' })
  const calls = stack.fake.backend.requests.length
  const moved = await post(stack, `${BUILT_IN}/responses`, zstdFrame(Buffer.from(JSON.stringify(responsesBody('x', { input: history })))), { ...session, 'content-encoding': 'zstd' })
  assert.equal(moved.status, 200)
  assert.match(await moved.text(), /served by b@example.com: second/)
  assert.equal(moved.headers.get('x-codex-eq-blobs-dropped'), '1')
  const sent = stack.fake.backend.requests.slice(calls)
  assert.deepEqual(sent.map((r) => [r.accountId, r.status]), [[a.accountId, 429], [b.accountId, 200]])
  assert.deepEqual(sent[1]!.blobs, [], 'A\'s reasoning went before the call')
  assert.equal(sent[1]!.headers['content-encoding'], undefined, 'the decoded body goes upstream plain, without the encoding header')
  assert.equal((sent[1]!.body as { input: unknown[] }).input.length, 2)
})

test('a corrupt zstd body gets 400 and one growing past --body-limit once decoded gets 413; neither is forwarded', async (t) => {
  const stack = await startStack(t, { settings: { bodyLimit: '64kib' } })
  await stack.addAccount()
  const valid = zstdFrame(Buffer.from(JSON.stringify(responsesBody('fine'))))
  for (const corrupt of [Buffer.from('not zstd at all, just text'), valid.subarray(0, valid.length - 10)]) {
    const response = await post(stack, '/v1/responses', corrupt, { 'content-encoding': 'zstd' })
    assert.equal(response.status, 400)
    const answer = await response.json() as { error: { type: string, message: string } }
    assert.match(answer.error.message, /zstd/)
  }
  const bomb = zstdBomb(10 * 1024 * 1024)
  assert.ok(bomb.length < 64 * 1024, 'small on the wire')
  const tooLarge = await post(stack, `${BUILT_IN}/responses`, bomb, { 'content-encoding': 'zstd' })
  assert.equal(tooLarge.status, 413)
  const answer = await tooLarge.json() as { error: { type: string, message: string } }
  assert.equal(answer.error.type, 'body_too_large')
  assert.equal(stack.fake.backend.requests.length, 0)
  const ok = await post(stack, '/v1/responses', valid, { 'content-encoding': 'zstd' })
  assert.equal(ok.status, 200)
  await ok.text()
  assert.equal(stack.fake.backend.requests.length, 1)
})
