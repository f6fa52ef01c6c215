import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { AUTH_CLAIM, CLIENT_ID, accountOfEncryptedContent, accountOfTurnState, decodeJwtPayload, encryptedContentFor, pkceChallenge, startFakeOpenAI, type FakeOpenAI, type TokenSet } from './index.js'

const REDIRECT = 'http://localhost:1455/auth/callback'

async function withFake (t: { after: (fn: () => Promise<void>) => void }, opts?: Parameters<typeof startFakeOpenAI>[0]): Promise<FakeOpenAI> {
  const fake = await startFakeOpenAI(opts)
  t.after(() => fake.close())
  return fake
}

async function authorize (fake: FakeOpenAI, verifier: string, extra: Record<string, string> = {}): Promise<Response> {
  const url = new URL('/oauth/authorize', fake.issuerUrl)
  const params = {
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT,
    scope: 'openid profile email offline_access',
    code_challenge: pkceChallenge(verifier),
    code_challenge_method: 'S256',
    state: 'st4te',
    ...extra
  }
  for (const [k, v] of Object.entries(params)) if (v !== '') url.searchParams.set(k, v)
  return await fetch(url, { redirect: 'manual' })
}

async function exchange (fake: FakeOpenAI, code: string, verifier: string, redirectUri = REDIRECT): Promise<Response> {
  return await fetch(`${fake.issuerUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: CLIENT_ID, code_verifier: verifier })
  })
}

async function refresh (fake: FakeOpenAI, refreshToken: string): Promise<Response> {
  return await fetch(`${fake.issuerUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: CLIENT_ID, grant_type: 'refresh_token', refresh_token: refreshToken })
  })
}

async function turn (fake: FakeOpenAI, tokens: TokenSet, body: Record<string, unknown> = {}, headers: Record<string, string> = {}, path = '/responses'): Promise<Response> {
  return await fetch(`${fake.backendUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens.access_token}`, 'chatgpt-account-id': tokens.account_id, 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify({ model: 'gpt-5.3-codex', stream: true, store: false, input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello there' }] }], ...body })
  })
}

function parseSse (text: string): Array<{ event: string, data: any }> {
  return text.split('\n\n').filter((block) => block.trim() !== '').map((block) => {
    const event = /^event: (.*)$/m.exec(block)?.[1] ?? ''
    const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as unknown
    return { event, data }
  })
}

test('PKCE login: good verifier gets tokens, bad verifier, reused code and wrong redirect are refused', async (t) => {
  const fake = await withFake(t)
  const verifier = randomBytes(64).toString('base64url')
  const res = await authorize(fake, verifier)
  assert.equal(res.status, 302)
  const location = new URL(res.headers.get('location')!)
  assert.equal(location.origin + location.pathname, REDIRECT)
  assert.equal(location.searchParams.get('state'), 'st4te')
  const code = location.searchParams.get('code')!

  const bad = await exchange(fake, code, randomBytes(64).toString('base64url'))
  assert.equal(bad.status, 400)
  assert.equal(((await bad.json()) as any).error, 'invalid_grant')
  const wrongRedirect = await exchange(fake, code, verifier, 'http://localhost:1457/auth/callback')
  assert.equal(wrongRedirect.status, 400)

  const good = await exchange(fake, code, verifier)
  assert.equal(good.status, 200)
  const tokens = (await good.json()) as any
  assert.match(tokens.refresh_token, /^rt_/)
  assert.equal(tokens.expires_in, 3600)
  const id = decodeJwtPayload(tokens.id_token)
  assert.equal(fake.accounts.length, 1)
  const account = fake.accounts[0]!
  assert.equal(id.email, account.email)
  assert.equal(id[AUTH_CLAIM].chatgpt_account_id, account.accountId)
  assert.equal(id[AUTH_CLAIM].chatgpt_plan_type, 'plus')
  assert.ok(decodeJwtPayload(tokens.access_token).exp > Date.now() / 1000)
  assert.ok(fake.allIssuedSecrets().includes(tokens.access_token))
  assert.equal((await exchange(fake, code, verifier)).status, 400, 'codes are single use')
  assert.equal(fake.issuer.tokenExchanges, 4)
})

test('authorize validates its query, honours nextLogin and consent', async (t) => {
  const fake = await withFake(t)
  const verifier = randomBytes(64).toString('base64url')
  assert.equal((await authorize(fake, verifier, { client_id: 'someone_else' })).status, 400)
  assert.equal((await authorize(fake, verifier, { code_challenge_method: 'plain' })).status, 400)
  assert.equal((await authorize(fake, verifier, { state: '' })).status, 400)
  assert.equal((await authorize(fake, verifier, { redirect_uri: 'http://127.0.0.1:1455/auth/callback' })).status, 400)

  const known = fake.addAccount({ email: 'known@example.com' })
  fake.nextLogin = known.accountId
  const res = await authorize(fake, verifier, { redirect_uri: 'http://localhost:40123/auth/callback' })
  const code = new URL(res.headers.get('location')!).searchParams.get('code')!
  const tokens = (await (await exchange(fake, code, verifier, 'http://localhost:40123/auth/callback')).json()) as any
  assert.equal(decodeJwtPayload(tokens.id_token).email, 'known@example.com')
  assert.equal(fake.accounts.length, 1)

  fake.consent = 'deny'
  const denied = new URL((await authorize(fake, verifier)).headers.get('location')!)
  assert.equal(denied.searchParams.get('error'), 'access_denied')
  assert.equal(denied.searchParams.get('state'), 'st4te')
  assert.equal(denied.searchParams.get('code'), null)
})

test('refresh tokens rotate, are single use, and scripted failures happen', async (t) => {
  const fake = await withFake(t)
  const account = fake.addAccount()
  const first = account.tokens.refresh_token
  const firstAccess = account.tokens.access_token
  const ok = await refresh(fake, first)
  assert.equal(ok.status, 200)
  const fresh = (await ok.json()) as any
  assert.notEqual(fresh.refresh_token, first)
  assert.notEqual(fresh.access_token, firstAccess)
  assert.equal(decodeJwtPayload(fresh.access_token)[AUTH_CLAIM].chatgpt_account_id, account.accountId)
  assert.equal(account.tokens.refresh_token, fresh.refresh_token)

  const reused = await refresh(fake, first)
  assert.equal(reused.status, 401)
  assert.equal(((await reused.json()) as any).error.code, 'refresh_token_reused')
  assert.equal((await refresh(fake, 'rt_unknown')).status, 401)

  fake.issuer.failRefresh(account.accountId, 'expired')
  const expired = await refresh(fake, fresh.refresh_token)
  assert.equal(((await expired.json()) as any).error.code, 'refresh_token_expired')
  fake.issuer.failRefresh(account.accountId, 'server_error')
  assert.equal((await refresh(fake, fresh.refresh_token)).status, 500)
  fake.issuer.failRefresh(account.accountId, 'down')
  await assert.rejects(refresh(fake, fresh.refresh_token))
  fake.issuer.failRefresh(account.accountId, null)
  assert.equal((await refresh(fake, fresh.refresh_token)).status, 200, 'scripted failures do not consume the token')

  const form = await fetch(`${fake.issuerUrl}/oauth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: account.tokens.refresh_token, client_id: CLIENT_ID }) })
  assert.equal(form.status, 400, 'Codex refreshes with JSON')
  assert.equal(fake.issuer.refreshCalls, 7)
})

test('concurrent refreshes with one token: one wins, the other is reused', async (t) => {
  const fake = await withFake(t)
  const account = fake.addAccount()
  fake.issuer.delayRefreshMs = 30
  const rt = account.tokens.refresh_token
  const statuses = (await Promise.all([refresh(fake, rt), refresh(fake, rt)])).map((r) => r.status).sort()
  assert.deepEqual(statuses, [200, 401])
})

test('device-code login', async (t) => {
  const fake = await withFake(t)
  const post = async (path: string, body: unknown): Promise<Response> =>
    await fetch(fake.issuerUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const start = (await (await post('/api/accounts/deviceauth/usercode', { client_id: CLIENT_ID })).json()) as any
  assert.equal(typeof start.interval, 'string')
  const poll = { device_auth_id: start.device_auth_id, user_code: start.user_code }
  assert.equal((await post('/api/accounts/deviceauth/token', poll)).status, 403)

  const page = await fetch(`${fake.issuerUrl}/codex/device`, { method: 'POST', body: new URLSearchParams({ user_code: start.user_code }) })
  assert.equal(page.status, 200)
  const approved = await post('/api/accounts/deviceauth/token', poll)
  assert.equal(approved.status, 200)
  const { authorization_code: code, code_challenge: challenge, code_verifier: verifier } = (await approved.json()) as any
  assert.equal(pkceChallenge(verifier), challenge)
  assert.equal((await exchange(fake, code, verifier, REDIRECT)).status, 400, 'device codes are bound to the deviceauth redirect')
  const tokens = await exchange(fake, code, verifier, `${fake.issuerUrl}/deviceauth/callback`)
  assert.equal(tokens.status, 200)

  const other = fake.addAccount({ email: 'dev@example.com' })
  const again = (await (await post('/api/accounts/deviceauth/usercode', { client_id: CLIENT_ID })).json()) as any
  assert.equal(fake.issuer.approveDevice(again.user_code, other.accountId), other.accountId)
  const second = (await (await post('/api/accounts/deviceauth/token', { device_auth_id: again.device_auth_id, user_code: again.user_code })).json()) as any
  const secondTokens = (await (await exchange(fake, second.authorization_code, second.code_verifier, `${fake.issuerUrl}/deviceauth/callback`)).json()) as any
  assert.equal(decodeJwtPayload(secondTokens.id_token).email, 'dev@example.com')
})

test('a successful turn streams a full Responses SSE answer with quota headers', async (t) => {
  const fake = await withFake(t)
  const account = fake.addAccount({ email: 'a@example.com' })
  const res = await turn(fake, account.tokens)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type')!, /^text\/event-stream/)
  assert.equal(res.headers.get('x-codex-primary-window-minutes'), '300')
  assert.equal(res.headers.get('x-codex-secondary-window-minutes'), '10080')
  assert.ok(res.headers.get('x-codex-primary-reset-at'))
  assert.ok(res.headers.get('x-codex-primary-reset-after-seconds'))
  assert.equal(res.headers.get('x-codex-plan-type'), 'plus')
  const events = parseSse(await res.text())
  const types = events.map((e) => e.event)
  assert.equal(types[0], 'response.created')
  assert.equal(types.at(-1), 'response.completed')
  for (const e of events) assert.equal(e.data.type, e.event)
  const text = events.filter((e) => e.event === 'response.output_text.delta').map((e) => e.data.delta).join('')
  assert.equal(text, 'served by a@example.com: hello there')
  const done = events.filter((e) => e.event === 'response.output_item.done').map((e) => e.data.item)
  assert.equal(done[0].type, 'reasoning')
  assert.match(done[0].encrypted_content, new RegExp(`^enc:${account.accountId}:`))
  assert.deepEqual(done[1].content, [{ type: 'output_text', annotations: [], logprobs: [], text }])
  const completed = events.at(-1)!.data.response
  assert.match(completed.id, /^resp_/)
  assert.equal(completed.object, 'response')
  assert.equal(typeof completed.usage.total_tokens, 'number')

  const recorded = fake.backend.requests[0]!
  assert.equal(recorded.path, '/backend-api/codex/responses')
  assert.equal(recorded.accountId, account.accountId)
  assert.equal(recorded.servedBy, 'a@example.com')
  assert.equal(recorded.status, 200)
  assert.equal(recorded.body.model, 'gpt-5.3-codex')
})

test('the backend checks tokens, account header and body', async (t) => {
  let now = Date.now()
  const fake = await withFake(t, { now: () => now })
  const a = fake.addAccount()
  const b = fake.addAccount()
  assert.equal((await turn(fake, { ...a.tokens, account_id: b.accountId })).status, 401)
  assert.equal((await turn(fake, a.tokens, { store: true })).status, 400)
  assert.deepEqual(await (await turn(fake, a.tokens, { store: true })).json(), { detail: 'Store must be set to false' })
  assert.equal((await turn(fake, a.tokens, { stream: false })).status, 400)
  for (const bad of [
    { instructions: ['not', 'a string'] },
    { input: { type: 'message' } },
    { input: [{ type: 'message', role: 'robot', content: 'x' }] },
    { input: [{ type: 'message', role: 'user', content: [{ type: 'text', text: 'chat-style part' }] }] },
    { input: [{ type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'file:///etc/passwd' }] }] },
    { input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: { not: 'a string' } }] },
    { input: [{ type: 'function_call_output', output: 'no call_id' }] },
    { tools: [{ type: 'function', function: { name: 'chat-style tool' } }] }
  ]) {
    const refused = await turn(fake, a.tokens, bad)
    assert.equal(refused.status, 400, JSON.stringify(bad))
    assert.match(((await refused.json()) as any).detail, /^Invalid/)
  }
  fake.backend.revokeAccessTokens(b.accountId)
  const revoked = await turn(fake, b.tokens)
  assert.equal(revoked.status, 401)
  assert.equal(((await revoked.json()) as any).error.code, 'token_invalidated')
  assert.equal((await turn(fake, fake.mintTokens(b.accountId))).status, 200)
  now += 3601 * 1000
  const expired = await turn(fake, a.tokens)
  assert.equal(expired.status, 401)
  assert.equal(((await expired.json()) as any).error.code, 'token_expired')
})

test('usage limits: scripted 429s, persistent exhaustion and /wham/usage', async (t) => {
  let now = 1_800_000_000_000
  const fake = await withFake(t, { now: () => now })
  const a = fake.addAccount({ plan: 'pro' })
  const nowSec = now / 1000
  fake.backend.script(a.accountId,
    { kind: 'usage_limit', resetsInSeconds: 600, via: 'body' },
    { kind: 'usage_limit', resetsAt: nowSec + 900, via: 'headers' },
    { kind: 'usage_limit', resetsInSeconds: 1200, via: 'headers-after' },
    { kind: 'status', status: 500 })
  const body = await turn(fake, a.tokens)
  assert.equal(body.status, 429)
  assert.deepEqual(await body.json(), { error: { type: 'usage_limit_reached', message: 'The usage limit has been reached', plan_type: 'pro', resets_at: nowSec + 600, resets_in_seconds: 600 } })
  assert.equal(body.headers.get('x-codex-primary-reset-at'), null)
  assert.equal(body.headers.get('x-codex-primary-used-percent'), '100')
  const headers = await turn(fake, a.tokens)
  assert.equal(headers.headers.get('x-codex-primary-reset-at'), String(nowSec + 900))
  assert.equal(((await headers.json()) as any).error.resets_at, undefined)
  const after = await turn(fake, a.tokens)
  assert.equal(after.headers.get('x-codex-primary-reset-after-seconds'), '1200')
  assert.equal(after.headers.get('x-codex-primary-reset-at'), null)
  const failed = await turn(fake, a.tokens)
  assert.equal(failed.status, 500)
  assert.equal(failed.headers.get('x-codex-primary-used-percent'), '10')
  assert.equal((await turn(fake, a.tokens)).status, 200)
  assert.equal(fake.backend.pendingSteps(a.accountId), 0)

  fake.backend.setExhausted(a.accountId, { resetsInSeconds: 60 })
  assert.equal((await turn(fake, a.tokens)).status, 429)
  const usage = await fetch(`${fake.chatgptBaseUrl}/wham/usage`, { headers: { authorization: `Bearer ${a.tokens.access_token}`, 'chatgpt-account-id': a.accountId } })
  const u = (await usage.json()) as any
  assert.equal(u.plan_type, 'pro')
  assert.equal(u.rate_limit.limit_reached, true)
  assert.equal(u.rate_limit.primary_window.reset_at, nowSec + 60)
  assert.equal(u.rate_limit.secondary_window.limit_window_seconds, 10080 * 60)
  now += 61_000
  assert.equal((await turn(fake, a.tokens)).status, 200, 'the limit lifts when resetsAt passes')
  assert.equal(fake.backend.usage(a.accountId).rate_limit.allowed, true)
})

test('encrypted reasoning is bound to the account that made it', async (t) => {
  const fake = await withFake(t)
  const a = fake.addAccount()
  const b = fake.addAccount()
  const events = parseSse(await (await turn(fake, a.tokens)).text())
  const reasoning = events.find((e) => e.event === 'response.output_item.done' && e.data.item.type === 'reasoning')!.data.item
  const input = [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'one' }] }, reasoning, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'two' }] }]
  assert.equal((await turn(fake, a.tokens, { input })).status, 200)
  const moved = await turn(fake, b.tokens, { input })
  assert.equal(moved.status, 400)
  const error = ((await moved.json()) as any).error
  assert.equal(error.code, 'invalid_encrypted_content')
  assert.match(error.message, /organization_id did not match/)
  const { encrypted_content: _dropped, ...stripped } = reasoning
  assert.equal((await turn(fake, b.tokens, { input: [input[0], stripped, input[2]] })).status, 200)
})

test('stream faults: drop, stream_failed, and hang or slow streams end on close()', async (t) => {
  const fake = await startFakeOpenAI()
  let closed = false
  t.after(async () => { if (!closed) await fake.close() })
  const a = fake.addAccount()
  fake.backend.script(a.accountId, { kind: 'drop', afterEvents: 2 }, { kind: 'stream_failed', code: 'rate_limit_exceeded', message: 'Rate limit reached. Please try again in 12s.' })
  const dropped = await turn(fake, a.tokens)
  assert.equal(dropped.status, 200)
  await assert.rejects(dropped.text())
  const failed = parseSse(await (await turn(fake, a.tokens)).text())
  assert.equal(failed.at(-1)!.event, 'response.failed')
  assert.equal(failed.at(-1)!.data.response.error.code, 'rate_limit_exceeded')

  fake.backend.script(a.accountId, { kind: 'hang' }, { kind: 'slow', eventDelayMs: 10_000 })
  const hanging = turn(fake, a.tokens)
  const slow = await (async () => { await new Promise((resolve) => setTimeout(resolve, 50)); return await turn(fake, a.tokens) })()
  assert.equal(slow.status, 200)
  const slowBody = slow.text()
  assert.equal(fake.backend.requests.at(-2)!.status, 0)
  const started = Date.now()
  closed = true
  await fake.close()
  assert.ok(Date.now() - started < 1000)
  await assert.rejects(hanging)
  await assert.rejects(slowBody)
})

test('outage: a status answer before authentication, /wham/usage unaffected, ended by null', async (t) => {
  const fake = await withFake(t)
  const a = fake.addAccount()
  fake.backend.setOutage({})
  const res = await turn(fake, a.tokens)
  assert.equal(res.status, 502)
  assert.deepEqual(await res.json(), { detail: 'Bad Gateway' })
  assert.equal(res.headers.get('x-codex-primary-used-percent'), null)
  assert.equal((await turn(fake, { ...a.tokens, access_token: 'nonsense' })).status, 502, 'before authentication')
  const models = await fetch(`${fake.backendUrl}/models?client_version=0.171.0`, { headers: { authorization: `Bearer ${a.tokens.access_token}`, 'chatgpt-account-id': a.accountId } })
  assert.equal(models.status, 502)
  assert.equal((await turn(fake, a.tokens, {}, {}, '/responses/compact')).status, 502)
  const usage = await fetch(`${fake.chatgptBaseUrl}/wham/usage`, { headers: { authorization: `Bearer ${a.tokens.access_token}`, 'chatgpt-account-id': a.accountId } })
  assert.equal(usage.status, 200)
  assert.equal(fake.backend.outageRequests, 4)
  assert.deepEqual(fake.backend.requests.map((r) => r.status), [502, 502, 502, 502, 200])

  fake.backend.setOutage({ status: 503, body: { error: { code: 'server_is_overloaded', message: 'Overloaded' } } })
  const overloaded = await turn(fake, a.tokens)
  assert.equal(overloaded.status, 503)
  assert.equal(((await overloaded.json()) as any).error.code, 'server_is_overloaded')
  fake.backend.setOutage(null)
  assert.equal((await turn(fake, a.tokens)).status, 200)
  assert.equal(fake.backend.outageRequests, 5)
})

test('outage: reset and hang modes, and forMs ends it by the fake clock', async (t) => {
  let now = 1_800_000_000_000
  const fake = await withFake(t, { now: () => now })
  const a = fake.addAccount()
  fake.backend.setOutage({ mode: 'reset' })
  await assert.rejects(turn(fake, a.tokens))
  assert.equal(fake.backend.requests.at(-1)!.status, 0)

  fake.backend.setOutage({ mode: 'hang' })
  const controller = new AbortController()
  const hanging = fetch(`${fake.backendUrl}/responses`, { method: 'POST', body: '{}', signal: controller.signal })
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(fake.backend.requests.length, 2)
  assert.equal(fake.backend.requests.at(-1)!.status, 0)
  controller.abort()
  await assert.rejects(hanging)

  fake.backend.setOutage({ status: 500, forMs: 10_000 })
  assert.equal((await turn(fake, a.tokens)).status, 500)
  now += 9_999
  assert.equal((await turn(fake, a.tokens)).status, 500)
  now += 1
  assert.equal((await turn(fake, a.tokens)).status, 200, 'the outage ends by itself')
  assert.equal(fake.backend.outageRequests, 4)

  // Counted from its first request: time passing before it does not shorten it.
  fake.backend.setOutage({ status: 502, forMs: 3_000, fromFirstRequest: true })
  now += 60_000
  assert.equal((await turn(fake, a.tokens)).status, 502)
  now += 2_999
  assert.equal((await turn(fake, a.tokens)).status, 502)
  now += 1
  assert.equal((await turn(fake, a.tokens)).status, 200, 'three seconds after the first request it met')
  assert.equal(fake.backend.outageRequests, 6)
})

test('model-scoped limits: 429 with the family headers for that model, other models served', async (t) => {
  let now = 1_800_000_000_000
  const fake = await withFake(t, { now: () => now })
  const a = fake.addAccount({ plan: 'pro' })
  const nowSec = now / 1000
  fake.backend.setModelLimit(a.accountId, 'gpt-5.3-codex-spark', { family: 'codex_bengalfox', limitName: 'GPT-5.3-Codex-Spark', resetsAt: nowSec + 600 })
  fake.backend.setModelLimit(a.accountId, 'gpt-5.4', { family: 'codex_other', limitName: 'GPT-5.4' })
  const limited = await turn(fake, a.tokens, { model: 'gpt-5.3-codex-spark' })
  assert.equal(limited.status, 429)
  assert.deepEqual(await limited.json(), { error: { type: 'usage_limit_reached', message: 'The usage limit has been reached', plan_type: 'pro', resets_at: nowSec + 600 } })
  const h = limited.headers
  assert.equal(h.get('x-codex-active-limit'), 'codex_bengalfox')
  assert.equal(h.get('x-codex-bengalfox-primary-used-percent'), '100')
  assert.equal(h.get('x-codex-bengalfox-primary-window-minutes'), '300')
  assert.equal(h.get('x-codex-bengalfox-primary-reset-at'), String(nowSec + 600))
  assert.equal(h.get('x-codex-bengalfox-secondary-used-percent'), '0')
  assert.equal(h.get('x-codex-bengalfox-secondary-window-minutes'), '10080')
  assert.equal(h.get('x-codex-bengalfox-limit-name'), 'GPT-5.3-Codex-Spark')
  assert.equal(h.get('x-codex-primary-used-percent'), '10', 'the codex family is not exhausted')
  assert.ok(h.get('x-codex-primary-reset-at'))
  assert.equal(h.get('x-codex-plan-type'), 'pro')
  const compact = await turn(fake, a.tokens, { model: 'gpt-5.3-codex-spark' }, {}, '/responses/compact')
  assert.equal(compact.status, 429)
  const other = await turn(fake, a.tokens, { model: 'gpt-5.4' })
  assert.equal(other.status, 429)
  assert.equal(other.headers.get('x-codex-other-limit-name'), 'GPT-5.4')
  assert.equal(((await other.json()) as any).error.resets_at, nowSec + 3600)
  assert.equal((await turn(fake, a.tokens, { model: 'gpt-5.3-codex' })).status, 200, 'other models are served')

  fake.backend.setExhausted(a.accountId, {})
  assert.equal((await turn(fake, a.tokens, { model: 'gpt-5.3-codex-spark' })).headers.get('x-codex-active-limit'), 'codex_bengalfox', 'a model limit wins over setExhausted')
  fake.backend.setExhausted(a.accountId, null)
  fake.backend.script(a.accountId, { kind: 'status', status: 500 })
  assert.equal((await turn(fake, a.tokens, { model: 'gpt-5.3-codex-spark' })).status, 500, 'scripted steps come first')
  fake.backend.setModelLimit(a.accountId, 'gpt-5.4', null)
  assert.equal((await turn(fake, a.tokens, { model: 'gpt-5.4' })).status, 200)
  now += 600_000
  assert.equal((await turn(fake, a.tokens, { model: 'gpt-5.3-codex-spark' })).status, 200, 'the limit lifts at resetsAt')
})

test('every kind of encrypted blob is bound to its account and recorded', async (t) => {
  const fake = await withFake(t)
  const a = fake.addAccount()
  const b = fake.addAccount()
  const part = (account: string): Record<string, unknown> => ({ type: 'encrypted_content', encrypted_content: encryptedContentFor(account) })
  const kinds: Array<{ where: string, item: (account: string) => Record<string, unknown> }> = [
    { where: 'reasoning', item: (id) => ({ type: 'reasoning', summary: [], content: null, encrypted_content: encryptedContentFor(id) }) },
    { where: 'compaction', item: (id) => ({ type: 'compaction', encrypted_content: encryptedContentFor(id) }) },
    { where: 'compaction_summary', item: (id) => ({ type: 'compaction_summary', encrypted_content: encryptedContentFor(id) }) },
    { where: 'context_compaction', item: (id) => ({ type: 'context_compaction', encrypted_content: encryptedContentFor(id) }) },
    { where: 'function_call_output.output', item: (id) => ({ type: 'function_call_output', call_id: 'call_1', output: [{ type: 'input_text', text: 'ok' }, part(id)] }) },
    { where: 'custom_tool_call_output.output', item: (id) => ({ type: 'custom_tool_call_output', call_id: 'call_2', output: [part(id)] }) },
    { where: 'agent_message.content', item: (id) => ({ type: 'agent_message', id: 'am_1', content: [part(id)] }) }
  ]
  const user = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go on' }] }
  for (const kind of kinds) {
    const own = await turn(fake, a.tokens, { input: [user, kind.item(a.accountId), user] })
    assert.equal(own.status, 200, `${kind.where} accepted under its own account`)
    await own.text()
    assert.deepEqual(fake.backend.requests.at(-1)!.blobs, [{ where: kind.where, owner: a.accountId }])
    const moved = await turn(fake, b.tokens, { input: [user, kind.item(a.accountId), user] })
    assert.equal(moved.status, 400, `${kind.where} refused under another account`)
    const error = ((await moved.json()) as any).error
    assert.equal(error.code, 'invalid_encrypted_content')
    assert.match(error.message, /organization_id did not match/)
    assert.deepEqual(fake.backend.requests.at(-1)!.blobs, [{ where: kind.where, owner: a.accountId }])
    const compacted = await turn(fake, b.tokens, { input: [user, kind.item(a.accountId)] }, {}, '/responses/compact')
    assert.equal(compacted.status, 400, `${kind.where} refused by /responses/compact too`)
  }
  const garbage = await turn(fake, a.tokens, { input: [user, { type: 'agent_message', content: [{ type: 'encrypted_content', encrypted_content: 'not ours' }] }] })
  assert.equal(garbage.status, 400)
  assert.match(((await garbage.json()) as any).error.message, /could not be decrypted/)
  assert.deepEqual(fake.backend.requests.at(-1)!.blobs, [{ where: 'agent_message.content', owner: null }])
  const plain = await turn(fake, a.tokens)
  await plain.text()
  assert.deepEqual(fake.backend.requests.at(-1)!.blobs, [])
})

test('compaction items: compaction_trigger streams one, /responses/compact ends with one', async (t) => {
  const fake = await withFake(t)
  const a = fake.addAccount()
  const user = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'summarise' }] }
  const plain = parseSse(await (await turn(fake, a.tokens)).text())
  assert.ok(!plain.some((e) => e.data.item?.type === 'compaction'), 'no compaction item without the trigger')

  const events = parseSse(await (await turn(fake, a.tokens, { input: [user, { type: 'compaction_trigger' }] })).text())
  const added = events.filter((e) => e.event === 'response.output_item.added').map((e) => e.data.item.type)
  assert.deepEqual(added, ['reasoning', 'compaction', 'message'])
  const done = events.filter((e) => e.event === 'response.output_item.done').map((e) => e.data.item)
  assert.deepEqual(done.map((item) => item.type), ['reasoning', 'compaction', 'message'])
  assert.deepEqual(Object.keys(done[1]).sort(), ['encrypted_content', 'type'])
  assert.equal(accountOfEncryptedContent(done[1].encrypted_content), a.accountId)
  const completed = events.at(-1)!
  assert.equal(completed.event, 'response.completed')
  assert.deepEqual(completed.data.response.output.map((item: any) => item.type), ['reasoning', 'compaction', 'message'])
  assert.deepEqual(completed.data.response.output[1], done[1])

  const compact = await turn(fake, a.tokens, { input: [user] }, {}, '/responses/compact')
  assert.equal(compact.status, 200)
  const { output } = (await compact.json()) as any
  assert.equal(output.length, 2)
  assert.equal(output[0].type, 'message')
  assert.match(output[0].content[0].text, /^compacted by /)
  assert.equal(output[1].type, 'compaction')
  assert.equal(accountOfEncryptedContent(output[1].encrypted_content), a.accountId)
  assert.equal(compact.headers.get('x-codex-turn-state'), null, 'no turn state on compact')
})

test('streamOptions.agentMessage adds an agent_message item with an encrypted part', async (t) => {
  const fake = await withFake(t)
  const a = fake.addAccount()
  fake.backend.streamOptions.agentMessage = true
  const events = parseSse(await (await turn(fake, a.tokens)).text())
  const added = events.find((e) => e.event === 'response.output_item.added' && e.data.item.type === 'agent_message')
  assert.ok(added)
  const done = events.filter((e) => e.event === 'response.output_item.done').map((e) => e.data.item)
  assert.deepEqual(done.map((item) => item.type), ['reasoning', 'agent_message', 'message'])
  const agent = done[1]
  assert.match(agent.id, /^am_/)
  assert.equal(added.data.item.id, agent.id)
  assert.equal(agent.content.length, 1)
  assert.equal(agent.content[0].type, 'encrypted_content')
  assert.equal(accountOfEncryptedContent(agent.content[0].encrypted_content), a.accountId)
  assert.deepEqual(events.at(-1)!.data.response.output[1], agent)
  assert.equal((await turn(fake, a.tokens, { input: [agent] })).status, 200, 'replayable under its own account')
  fake.backend.streamOptions.agentMessage = false
  const plain = parseSse(await (await turn(fake, a.tokens)).text())
  assert.ok(!plain.some((e) => e.data.item?.type === 'agent_message'))
})

test('turn state: minted per account, reused when the request carries its own, recorded', async (t) => {
  const fake = await withFake(t)
  const a = fake.addAccount()
  const b = fake.addAccount()
  const first = await turn(fake, a.tokens)
  await first.text()
  const minted = first.headers.get('x-codex-turn-state')!
  assert.match(minted, new RegExp(`^ts_${a.accountId}_[0-9a-zA-Z]+$`))
  assert.equal(accountOfTurnState(minted), a.accountId)
  assert.equal(accountOfTurnState('something else'), null)
  assert.equal(fake.backend.requests.at(-1)!.turnState, undefined)

  const again = await turn(fake, a.tokens, {}, { 'x-codex-turn-state': minted })
  await again.text()
  assert.equal(again.headers.get('x-codex-turn-state'), minted, 'the turn keeps its state')
  assert.equal(fake.backend.requests.at(-1)!.turnState, minted)

  const fresh = await turn(fake, a.tokens)
  await fresh.text()
  assert.notEqual(fresh.headers.get('x-codex-turn-state'), minted, 'a new turn gets a new state')

  const moved = await turn(fake, b.tokens, {}, { 'x-codex-turn-state': minted })
  await moved.text()
  const other = moved.headers.get('x-codex-turn-state')!
  assert.equal(accountOfTurnState(other), b.accountId, "another account's state is not reused")
  assert.equal(fake.backend.requests.at(-1)!.turnState, minted)
})

test('stream_failed: overload before any content, and a failure after content started', async (t) => {
  const fake = await withFake(t)
  const a = fake.addAccount()
  fake.backend.script(a.accountId,
    { kind: 'stream_failed', code: 'server_is_overloaded', message: 'Our servers are currently overloaded. Please try again later.' },
    { kind: 'stream_failed', code: 'server_is_overloaded', message: 'Overloaded', afterContent: true })
  const early = await turn(fake, a.tokens)
  assert.equal(early.status, 200)
  const events = parseSse(await early.text())
  assert.deepEqual(events.map((e) => e.event), ['response.created', 'response.in_progress', 'response.failed'])
  assert.equal(events[2]!.data.response.status, 'failed')
  assert.deepEqual(events[2]!.data.response.error, { code: 'server_is_overloaded', message: 'Our servers are currently overloaded. Please try again later.' })

  const late = parseSse(await (await turn(fake, a.tokens)).text())
  const types = late.map((e) => e.event)
  assert.equal(types[0], 'response.created')
  assert.equal(types.at(-1), 'response.failed')
  assert.ok(!types.includes('response.completed'))
  const reasoning = late.find((e) => e.event === 'response.output_item.done')!.data.item
  assert.equal(reasoning.type, 'reasoning')
  const deltas = late.filter((e) => e.event === 'response.output_text.delta')
  assert.equal(deltas.length, 1)
  assert.ok(deltas[0]!.data.delta.length > 0)
  assert.ok(types.indexOf('response.output_item.done') < types.indexOf('response.output_text.delta'))
  assert.equal(late.at(-1)!.data.response.error.code, 'server_is_overloaded')
  assert.equal((await turn(fake, a.tokens)).status, 200)
})
