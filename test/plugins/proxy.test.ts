import { test } from 'node:test'
import assert from 'node:assert/strict'
import { postResponses, responsesBody, rawGetStatus, startStack } from '../helpers/stack.js'

test('a turn streams through with the account\'s credentials and the client\'s headers', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'one@example.com' })
  const response = await postResponses(stack, responsesBody('ping'), {
    authorization: 'Bearer client-own-token',
    cookie: 'session=secret',
    'session-id': 'sess-1',
    originator: 'codex_exec',
    'x-codex-turn-metadata': '{"a":1}',
    'chatgpt-account-id': 'forged'
  })
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/)
  assert.equal(response.headers.get('x-codex-eq-account'), account.id)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '1')
  assert.ok(response.headers.get('x-codex-primary-used-percent') !== null, 'quota headers are passed on')
  const text = await response.text()
  assert.match(text, /served by one@example.com: ping/)
  assert.match(text, /event: response.completed/)
  const seen = stack.fake.backend.requests.at(-1)!
  assert.equal(seen.path, '/backend-api/codex/responses')
  assert.equal(seen.headers.authorization, `Bearer ${account.tokens.access_token}`)
  assert.equal(seen.headers['chatgpt-account-id'], account.accountId)
  assert.equal(seen.headers.cookie, undefined)
  assert.equal(seen.headers['session-id'], 'sess-1')
  assert.equal(seen.headers.originator, 'codex_exec')
  assert.equal(seen.headers['x-codex-turn-metadata'], '{"a":1}')
  assert.deepEqual(seen.rawBody, Buffer.from(JSON.stringify(responsesBody('ping'))), 'the body is forwarded byte for byte')
})

test('when the current account hits its usage limit the next one answers, unseen by the client', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com' })
  const resetsAt = Math.floor(Date.now() / 1000) + 3600
  stack.fake.backend.setExhausted(first.accountId, { resetsAt, via: 'body' })
  const response = await postResponses(stack)
  assert.equal(response.status, 200)
  assert.match(await response.text(), /served by second@example.com/)
  assert.equal(response.headers.get('x-codex-eq-account'), second.id)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')
  const accounts = await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, unknown>>
  assert.equal(accounts[0]!.status, 'cooling')
  assert.equal(accounts[0]!.disabled_until, new Date(resetsAt * 1000).toISOString())
  assert.equal(accounts[1]!.current, true)
})

test('the whole pool out: 429 usage_limit_reached with the earliest reset, at once', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  const b = await stack.addAccount()
  const now = Math.floor(Date.now() / 1000)
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: now + 7200, via: 'body' })
  stack.fake.backend.setExhausted(b.accountId, { resetsAt: now + 1800, via: 'body' })
  const first = await postResponses(stack)
  assert.equal(first.status, 429)
  const body = await first.json() as { error: { type: string, resets_at: number, resets_in_seconds: number } }
  assert.equal(body.error.type, 'usage_limit_reached')
  assert.equal(body.error.resets_at, now + 1800)
  assert.ok(Number(first.headers.get('retry-after')) > 1700)
  const calls = stack.fake.backend.requests.length
  const again = await postResponses(stack)
  assert.equal(again.status, 429)
  assert.equal(stack.fake.backend.requests.length, calls, 'no upstream call while every account rests')
})

test('an expired access token is refreshed and the request succeeds', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  stack.fake.backend.revokeAccessTokens(account.accountId)
  const response = await postResponses(stack)
  assert.equal(response.status, 200)
  await response.text()
  assert.equal(stack.fake.issuer.refreshCalls, 1)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2', 'the 401 refreshes at once: the refused token is not sent twice')
})

test('paths cannot leave the upstream base', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  for (const path of ['/v1/../wham/usage', '/v1/%2e%2e/wham/usage', '/v1/responses/..%2f..%2fx', '/v1/.%2E/x', '/v1/a%5c..%5cb', '/v1//x']) {
    assert.equal(await rawGetStatus(stack, path), 400, path)
  }
  assert.equal(stack.fake.backend.requests.length, 0)
})

test('a 400 from upstream reaches the client as it is and penalises no account', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  const response = await postResponses(stack, { ...responsesBody(), store: true })
  assert.equal(response.status, 400)
  assert.match(await response.text(), /Store must be set to false/)
  const accounts = await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, unknown>>
  assert.equal(accounts[0]!.status, 'active')
})

test('bodies over the limit get 413 and are not forwarded', async (t) => {
  const stack = await startStack(t, { settings: { bodyLimit: '64kib' } })
  await stack.addAccount()
  const response = await postResponses(stack, responsesBody('x'.repeat(100 * 1024)))
  assert.equal(response.status, 413)
  assert.equal(stack.fake.backend.requests.length, 0)
})

test('with API keys configured, /v1 needs one and it is not forwarded', async (t) => {
  const stack = await startStack(t, { settings: { apiKey: ['client-key-0123456789'], adminToken: 'admin-token-0123456789' } })
  await stack.addAccount()
  assert.equal((await postResponses(stack)).status, 401)
  assert.equal((await postResponses(stack, responsesBody(), { authorization: 'Bearer admin-token-0123456789' })).status, 401, 'the admin token is not an API key')
  const ok = await postResponses(stack, responsesBody(), { authorization: 'Bearer client-key-0123456789' })
  assert.equal(ok.status, 200)
  await ok.text()
  assert.equal(stack.fake.backend.requests.length, 1)
  assert.doesNotMatch(String(stack.fake.backend.requests[0]!.headers.authorization), /client-key/)
  const api = await fetch(`${stack.url}/accounts`, { headers: { authorization: 'Bearer client-key-0123456789' } })
  assert.equal(api.status, 401, 'an API key is not the admin token')
})
