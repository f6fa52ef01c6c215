import { test } from 'node:test'
import assert from 'node:assert/strict'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { doneItemOf } from '../helpers/sse-items.js'

async function accounts (stack: Stack): Promise<Array<Record<string, any>>> {
  return await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, any>>
}

/** The reasoning item a finished turn produced (to replay it in the next turn, as the Codex CLI does). */
function reasoningItemOf (sse: string): Record<string, unknown> {
  return doneItemOf(sse, 'reasoning')
}

test('a reset given only by the headers sets the cooldown and is shown with its source', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  await stack.addAccount()
  const resetsAt = Math.floor(Date.now() / 1000) + 5000
  stack.fake.backend.setExhausted(a.accountId, { resetsAt, via: 'headers' })
  const response = await postResponses(stack)
  assert.equal(response.status, 200)
  await response.text()
  const [first] = await accounts(stack)
  assert.equal(first!.status, 'cooling')
  assert.equal(first!.disabled_until, new Date(resetsAt * 1000).toISOString())
  assert.equal(first!.disabled_source, 'header.x-codex-primary-reset-at')
})

test('a usage limit with no reset anywhere falls back to the configured cooldown', async (t) => {
  const stack = await startStack(t, { settings: { cooldown: '45m' } })
  const a = await stack.addAccount()
  await stack.addAccount()
  stack.fake.backend.setExhausted(a.accountId, { via: 'none' })
  const before = Date.now()
  await (await postResponses(stack)).text()
  const [first] = await accounts(stack)
  assert.equal(first!.status, 'disabled')
  assert.equal(first!.disabled_source, 'cooldown')
  const until = Date.parse(first!.disabled_until)
  assert.ok(until >= before + 45 * 60_000 && until <= Date.now() + 45 * 60_000)
})

test('a response.failed usage limit before any content fails over unseen and rests the account', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  await stack.addAccount({ email: 'b@example.com' })
  const resetsAt = Math.floor(Date.now() / 1000) + 900
  stack.fake.backend.script(a.accountId, { kind: 'stream_failed', code: 'usage_limit_reached', message: 'The usage limit has been reached', resetsAt })
  const first = await postResponses(stack)
  assert.equal(first.status, 200)
  const text = await first.text()
  assert.doesNotMatch(text, /response\.failed/, 'the client never sees it')
  assert.match(text, /served by b@example.com/)
  const [resting] = await accounts(stack)
  assert.equal(resting!.status, 'cooling')
  assert.equal(resting!.disabled_source, 'stream.resets_at')
})

test('a response.failed usage limit after content reaches the client as it is, and rests the account for the next turn', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  await stack.addAccount({ email: 'b@example.com' })
  const resetsAt = Math.floor(Date.now() / 1000) + 900
  stack.fake.backend.script(a.accountId, { kind: 'stream_failed', code: 'usage_limit_reached', message: 'The usage limit has been reached', resetsAt, afterContent: true })
  const first = await postResponses(stack)
  assert.equal(first.status, 200)
  assert.match(await first.text(), /response\.failed/, 'the failure reaches the client as it is')
  const [resting] = await accounts(stack)
  assert.equal(resting!.status, 'cooling')
  assert.equal(resting!.disabled_source, 'stream.resets_at')
  const second = await postResponses(stack)
  assert.match(await second.text(), /served by b@example.com/)
})

test('quota headers become a snapshot per account, and reach the client', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  stack.fake.backend.setQuotaHeaders(a.accountId, { primaryUsedPercent: 37, secondaryUsedPercent: 12 })
  const response = await postResponses(stack)
  await response.text()
  assert.equal(response.headers.get('x-codex-primary-used-percent'), '37')
  const [view] = await accounts(stack)
  assert.equal(view!.quota.primary.used_percent, 37)
  assert.equal(view!.quota.secondary.used_percent, 12)
  assert.equal(view!.quota.primary.window_minutes, 300)
  assert.ok(Date.parse(view!.quota.primary.resets_at) > Date.now())
})

test('a conversation whose account runs out continues on another account without its foreign reasoning', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  await stack.addAccount({ email: 'b@example.com' })
  const session = { 'session-id': 'conversation-42' }
  const turn1 = await postResponses(stack, responsesBody('first question'), session)
  const sse1 = await turn1.text()
  assert.match(sse1, /served by a@example.com/)
  const reasoning = reasoningItemOf(sse1)
  const history = [
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'first question' }] },
    reasoning,
    { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'answer one' }] },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'second question' }] }
  ]
  // The same conversation stays on its account while it works...
  const turn2 = await postResponses(stack, responsesBody('x', { input: history }), session)
  assert.match(await turn2.text(), /served by a@example.com: second question/)
  assert.equal(stack.fake.backend.requests.at(-1)!.body.input.length, 4, 'nothing is dropped while the conversation stays')
  // ...and when that account runs out, it moves without the reasoning made under the old account.
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600 })
  const turn3 = await postResponses(stack, responsesBody('x', { input: history }), session)
  assert.equal(turn3.status, 200)
  assert.match(await turn3.text(), /served by b@example.com: second question/)
  const sent = stack.fake.backend.requests.at(-1)!
  assert.equal(sent.body.input.length, 3)
  assert.ok(sent.body.input.every((item: { type?: string }) => item.type !== 'reasoning'))
})

test('foreign reasoning from a conversation the pool never saw (e.g. before a restart) is dropped after the backend refuses it', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  const sse = await (await postResponses(stack, responsesBody('hi'), { 'session-id': 'old' })).text()
  const reasoning = reasoningItemOf(sse)
  await fetch(`${stack.url}/accounts/${b.id}/select`, { method: 'POST' })
  const input = [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] }, reasoning, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'again' }] }]
  const response = await postResponses(stack, responsesBody('x', { input }), { 'session-id': 'unknown-conversation' })
  assert.equal(response.status, 200)
  assert.match(await response.text(), /served by b@example.com: again/)
})

test('every /v1 answer names the serving account and the attempts; the log line says who was skipped and why', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  const b = await stack.addAccount()
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600 })
  const response = await postResponses(stack)
  await response.text()
  assert.equal(response.headers.get('x-codex-eq-account'), b.id)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')
  const line = stack.logs.find((entry) => entry.msg === 'proxied')
  assert.ok(line !== undefined)
  assert.equal(line.account, b.id)
  assert.deepEqual(line.skipped, [{ account: a.id, reason: 'usage_limit_reached', cause: 'quota' }])
  assert.equal(response.headers.get('x-codex-eq-skipped'), `${a.id}=quota`)
})

test('/metrics reports requests, failovers, refreshes, account state, quota, time to first byte and open streams', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: 'admin-token-0123456789' } })
  const auth = { authorization: 'Bearer admin-token-0123456789' }
  const a = await stack.addAccount()
  const b = await stack.addAccount()
  stack.fake.backend.setQuotaHeaders(b.accountId, { primaryUsedPercent: 55 })
  await (await postResponses(stack)).text()
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600 })
  await (await postResponses(stack)).text()
  await fetch(`${stack.url}/accounts/${b.id}/refresh`, { method: 'POST', headers: auth })
  assert.equal((await fetch(`${stack.url}/metrics`)).status, 401, 'guarded by the admin token')
  const text = await (await fetch(`${stack.url}/metrics`, { headers: auth })).text()
  assert.match(text, new RegExp(`codex_eq_requests_total\\{account="${a.id}",status="200"\\} 1`))
  assert.match(text, new RegExp(`codex_eq_requests_total\\{account="${b.id}",status="200"\\} 1`))
  assert.match(text, /codex_eq_failovers_total\{kind="cooling",cause="quota"\} 1/)
  assert.match(text, /codex_eq_refreshes_total\{result="ok"\} 1/)
  assert.match(text, new RegExp(`codex_eq_account_state\\{account="${a.id}",state="cooling"\\} 1`))
  assert.match(text, new RegExp(`codex_eq_account_current\\{account="${b.id}"\\} 1`))
  assert.match(text, new RegExp(`codex_eq_quota_used_percent\\{account="${b.id}",window="primary"\\} 55`))
  assert.match(text, /codex_eq_upstream_ttfb_seconds_count 3/)
  assert.match(text, /codex_eq_open_streams 0/)
})

test('the usage probe lifts a cooldown whose window has reset, and leaves one that has not', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  const b = await stack.addAccount()
  await stack.addAccount()
  const later = Math.floor(Date.now() / 1000) + 7200
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: later })
  stack.fake.backend.setExhausted(b.accountId, { resetsAt: later })
  await (await postResponses(stack)).text()
  let views = await accounts(stack)
  assert.deepEqual(views.map((v) => v.status), ['cooling', 'cooling', 'active'])
  stack.fake.backend.setExhausted(a.accountId, null) // a's window reset early; b's did not
  const lifted = await stack.app.usageProbe.probeOnce()
  assert.equal(lifted, 1)
  views = await accounts(stack)
  assert.deepEqual(views.map((v) => v.status), ['active', 'cooling', 'active'])
  const usageCalls = stack.fake.backend.requests.filter((r) => r.path.endsWith('/wham/usage'))
  assert.equal(usageCalls.length, 2, 'only resting accounts are probed')
})

test('a large 400 read to look for a reasoning refusal still reaches the client whole', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  const detail = 'x'.repeat(300 * 1024)
  stack.fake.backend.script(a.accountId, { kind: 'status', status: 400, body: { detail } })
  const input = [{ type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: `enc:${a.accountId}:abc` }, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] }]
  const response = await postResponses(stack, responsesBody('x', { input }))
  assert.equal(response.status, 400)
  const body = await response.json() as { detail: string }
  assert.equal(body.detail.length, detail.length)
})
