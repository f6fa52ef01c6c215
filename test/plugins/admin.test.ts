import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKENS_FILE, type StoreData } from '../../src/store/file-store.js'
import { CLIENT_ID, codexAuthJson, decodeJwtPayload } from '../fakes/index.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { makeJwt } from '../helpers/tokens.js'

type View = Record<string, any>

async function call (stack: Stack, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number, json: any, text: string }> {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    init.headers = { 'content-type': 'application/json', ...headers }
  }
  const response = await fetch(`${stack.url}${path}`, init)
  const text = await response.text()
  let json: any = null
  try { json = JSON.parse(text) } catch { /* not JSON */ }
  return { status: response.status, json, text }
}

const accounts = async (stack: Stack): Promise<View[]> => (await call(stack, 'GET', '/accounts')).json as View[]
const storeFile = (stack: Stack): string => join(stack.authsDir, TOKENS_FILE)
const stored = async (stack: Stack): Promise<StoreData> => JSON.parse(await readFile(storeFile(stack), 'utf8')) as StoreData

async function drain (response: Response): Promise<string> {
  return await response.text()
}

function assertErrorBody (result: { status: number, json: any, text: string }, status: number | 'any4xx', what: string): void {
  if (status === 'any4xx') assert.ok(result.status >= 400 && result.status < 500, `${what}: ${result.status} ${result.text}`)
  else assert.equal(result.status, status, `${what}: ${result.text}`)
  assert.equal(typeof result.json?.error?.type, 'string', `${what}: ${result.text}`)
  assert.equal(typeof result.json?.error?.message, 'string', `${what}: ${result.text}`)
  assert.ok(result.json.error.message.length > 0)
}

test('GET /accounts shows each account\'s state with a masked token, never a whole one', async (t) => {
  const stack = await startStack(t)
  const cooling = await stack.addAccount({ email: 'cooling@example.com', plan: 'pro' })
  const failing = await stack.addAccount({ email: 'failing@example.com' })
  const serving = await stack.addAccount({ email: 'serving@example.com', plan: 'team' })
  const locked = await stack.addAccount({ email: 'locked@example.com' })
  const resetsAt = Math.floor(Date.now() / 1000) + 3600
  stack.fake.backend.setExhausted(cooling.accountId, { resetsAt })
  stack.fake.backend.script(failing.accountId, { kind: 'status', status: 403 }, { kind: 'status', status: 403 }, { kind: 'status', status: 403 })
  const before = Date.now()
  const response = await postResponses(stack)
  assert.equal(response.status, 200)
  assert.match(await drain(response), /served by serving@example.com/)
  stack.fake.issuer.failRefresh(locked.accountId, 'invalidated')
  const refused = await call(stack, 'POST', `/accounts/${locked.id}/refresh`)
  assertErrorBody(refused, 409, 'a refresh refused for good')

  const list = await call(stack, 'GET', '/accounts')
  assert.equal(list.status, 200)
  const views = list.json as View[]
  assert.deepEqual(views.map((v) => v.email), ['cooling@example.com', 'failing@example.com', 'serving@example.com', 'locked@example.com'], 'in the order they were added')
  for (const [view, fake] of [[views[0]!, cooling], [views[1]!, failing], [views[2]!, serving], [views[3]!, locked]] as const) {
    assert.equal(view.id, fake.id)
    assert.equal(view.account_id, fake.accountId)
    assert.equal(view.plan, fake.plan)
    // the ladder refreshed the failing account's tokens: compare with the latest ones issued
    const access = stack.fake.accounts.find((a) => a.accountId === fake.accountId)!.tokens.access_token
    assert.equal(typeof view.token, 'string')
    assert.ok(view.token.length < 20 && view.token.startsWith(access.slice(0, 6)), `a short masked form of the access token: ${view.token}`)
    assert.equal(view.expire, new Date(decodeJwtPayload(access).exp * 1000).toISOString())
  }
  const [a, b, c, d] = views as [View, View, View, View]
  assert.deepEqual([a.status, b.status, c.status, d.status], ['cooling', 'disabled', 'active', 'needs_login'])
  assert.deepEqual([a.current, b.current, c.current, d.current], [false, false, true, false])

  assert.equal(a.disabled_until, new Date(resetsAt * 1000).toISOString())
  assert.equal(a.reason, 'usage_limit_reached')
  const disabledUntil = Date.parse(b.disabled_until)
  assert.ok(disabledUntil >= before + 3 * 3_600_000 && disabledUntil <= Date.now() + 3 * 3_600_000, `disabled for the 3 h cooldown: ${b.disabled_until}`)
  assert.match(b.reason, /HTTP 403/)
  assert.match(b.last_error, /HTTP 403/)
  assert.equal(c.disabled_until, null)
  assert.equal(c.reason, null)
  assert.equal(c.last_error, null)
  assert.match(d.reason, /refresh_token_invalidated/)
  assert.match(d.last_error, /sign in/)

  assert.equal(c.requests, 1)
  assert.ok(Date.parse(c.last_used) >= before, `last_used: ${c.last_used}`)
  for (const view of [a, b, d]) {
    assert.equal(view.requests, 0)
    assert.equal(view.last_used, null)
  }

  const secrets = stack.fake.allIssuedSecrets()
  assert.ok(secrets.length >= 12)
  for (const secret of secrets) assert.ok(!list.text.includes(secret), 'no whole token in GET /accounts')
})

test('GET /healthz answers without credentials and counts usable accounts', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: 'admin-token-0123456789' } })
  const headers = { authorization: 'Bearer admin-token-0123456789' }
  const empty = await call(stack, 'GET', '/healthz')
  assert.equal(empty.status, 200)
  assert.deepEqual({ status: empty.json.status, accounts: empty.json.accounts, usable: empty.json.usable }, { status: 'ok', accounts: 0, usable: 0 })
  const one = await stack.addAccount()
  await stack.addAccount()
  stack.fake.backend.setExhausted(one.accountId, {})
  await drain(await postResponses(stack))
  const health = await call(stack, 'GET', '/healthz')
  assert.equal(health.json.accounts, 2)
  assert.equal(health.json.usable, 1)
  assert.equal((await call(stack, 'GET', '/accounts')).status, 401, 'the accounts need the admin token')
  assert.equal((await call(stack, 'GET', '/accounts', undefined, headers)).status, 200)
})

test('DELETE /accounts/:id forgets the account (204), then 404', async (t) => {
  const stack = await startStack(t)
  const gone = await stack.addAccount()
  const kept = await stack.addAccount()
  const deleted = await call(stack, 'DELETE', `/accounts/${gone.id}`)
  assert.equal(deleted.status, 204)
  assert.equal(deleted.text, '')
  assert.deepEqual((await accounts(stack)).map((v) => v.id), [kept.id])
  assert.deepEqual((await stored(stack)).accounts.map((a) => a.id), [kept.id], 'gone from the token file too')
  assertErrorBody(await call(stack, 'DELETE', `/accounts/${gone.id}`), 404, 'deleted twice')
  const response = await postResponses(stack)
  assert.equal(response.headers.get('x-codex-eq-account'), kept.id)
  await drain(response)
})

test('POST /accounts/:id/refresh rotates the tokens: the old refresh token is dead, the new one is stored and used', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  const old = account.tokens
  const calls = stack.fake.issuer.refreshCalls
  const result = await call(stack, 'POST', `/accounts/${account.id}/refresh`)
  assert.equal(result.status, 200, result.text)
  assert.equal(stack.fake.issuer.refreshCalls, calls + 1)
  const fresh = stack.fake.accounts.find((a) => a.accountId === account.accountId)!.tokens
  assert.notEqual(fresh.refresh_token, old.refresh_token)
  assert.equal(result.json.id, account.id)
  assert.ok(result.json.token.startsWith(fresh.access_token.slice(0, 6)))
  assert.equal((await stored(stack)).accounts[0]!.tokens.refreshToken, fresh.refresh_token)

  const reuse = await fetch(`${stack.fake.issuerUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: CLIENT_ID, grant_type: 'refresh_token', refresh_token: old.refresh_token })
  })
  assert.equal(reuse.status, 401)
  assert.equal(((await reuse.json()) as { error: { code: string } }).error.code, 'refresh_token_reused')

  const response = await postResponses(stack)
  await drain(response)
  assert.equal(stack.fake.backend.requests.at(-1)!.headers.authorization, `Bearer ${fresh.access_token}`)
  assertErrorBody(await call(stack, 'POST', '/accounts/nosuchaccount/refresh'), 404, 'refresh of an unknown id')
})

test('POST /accounts/:id/enable clears a cooldown', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  await stack.addAccount()
  stack.fake.backend.setExhausted(first.accountId, { resetsInSeconds: 3600 })
  await drain(await postResponses(stack))
  assert.equal((await accounts(stack))[0]!.status, 'cooling')
  const enabled = await call(stack, 'POST', `/accounts/${first.id}/enable`)
  assert.equal(enabled.status, 200)
  assert.equal(enabled.json.status, 'active')
  assert.equal(enabled.json.disabled_until, null)
  assert.equal(enabled.json.reason, null)
  assert.equal((await stored(stack)).accounts[0]!.disabledUntil, null, 'written to the token file')
  stack.fake.backend.setExhausted(first.accountId, null)
  assert.equal((await call(stack, 'POST', `/accounts/${first.id}/select`)).status, 200)
  const response = await postResponses(stack, responsesBody('again', { prompt_cache_key: 'another-conversation' }))
  assert.equal(response.headers.get('x-codex-eq-account'), first.id, 'usable again at once')
  await drain(response)
  assertErrorBody(await call(stack, 'POST', '/accounts/nosuchaccount/enable'), 404, 'enable of an unknown id')
})

test('POST /accounts/import takes a Codex auth.json or the bare triple; identity comes from the id_token', async (t) => {
  const stack = await startStack(t)
  const fromFile = stack.fake.addAccount({ email: 'file@example.com', plan: 'pro' })
  const created = await call(stack, 'POST', '/accounts/import', codexAuthJson(fromFile.tokens))
  assert.equal(created.status, 201, created.text)
  assert.equal(created.json.email, 'file@example.com')
  assert.equal(created.json.account_id, fromFile.accountId)
  assert.equal(created.json.plan, 'pro')
  assert.equal(created.json.status, 'active')

  const bare = stack.fake.addAccount({ email: 'bare@example.com', plan: 'team' })
  const triple = await call(stack, 'POST', '/accounts/import', { id_token: bare.tokens.id_token, access_token: bare.tokens.access_token, refresh_token: bare.tokens.refresh_token })
  assert.equal(triple.status, 201, triple.text)
  assert.deepEqual([triple.json.email, triple.json.account_id, triple.json.plan], ['bare@example.com', bare.accountId, 'team'])

  const withId = stack.fake.addAccount({ email: 'with-id@example.com' })
  const explicit = await call(stack, 'POST', '/accounts/import', { ...withId.tokens })
  assert.equal(explicit.status, 201, explicit.text)
  assert.equal(explicit.json.account_id, withId.accountId)

  const file = await stored(stack)
  assert.deepEqual(file.accounts.map((a) => a.email), ['file@example.com', 'bare@example.com', 'with-id@example.com'])
  assert.equal(file.accounts[0]!.tokens.refreshToken, fromFile.tokens.refresh_token)
})

test('importing an account that is already there updates it in place', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'again@example.com' })
  await stack.addAccount()
  const relogin = stack.fake.mintTokens(account.accountId)
  const again = await call(stack, 'POST', '/accounts/import', codexAuthJson(relogin))
  assert.equal(again.status, 200, again.text)
  assert.equal(again.json.id, account.id)
  const views = await accounts(stack)
  assert.equal(views.length, 2, 'no second entry')
  assert.equal(views[0]!.id, account.id, 'keeps its place')
  const file = await stored(stack)
  assert.equal(file.accounts.length, 2)
  assert.equal(file.accounts[0]!.tokens.refreshToken, relogin.refresh_token)
  assert.equal(file.accounts[0]!.tokens.accessToken, relogin.access_token)
})

test('malformed imports and odd ids get a 4xx error body and change nothing', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  const other = stack.fake.addAccount()
  const valid = other.tokens
  const before = await readFile(storeFile(stack))
  const notJwt = 'this-is-not-a-jwt-but-long-enough'
  const noAccountClaim = makeJwt({ email: 'x@example.com' })
  const imports: Array<[string, unknown, Record<string, string>?]> = [
    ['not JSON', '{"id_token": "a", '],
    ['an empty body', ''],
    ['a JSON array', [valid.id_token, valid.access_token, valid.refresh_token]],
    ['a JSON string', '"eyJ"'],
    ['tokens of the wrong type', { id_token: 5, access_token: valid.access_token, refresh_token: valid.refresh_token }],
    ['auth.json with tokens as a list', { auth_mode: 'chatgpt', tokens: [valid.id_token] }],
    ['no tokens at all', {}],
    ['a missing refresh token', { id_token: valid.id_token, access_token: valid.access_token }],
    ['auth.json missing the access token', { auth_mode: 'chatgpt', tokens: { id_token: valid.id_token, refresh_token: valid.refresh_token } }],
    ['empty tokens', { id_token: '', access_token: '', refresh_token: '' }],
    ['an id_token that is not a JWT', { id_token: notJwt, access_token: valid.access_token, refresh_token: valid.refresh_token }],
    ['an id_token without a ChatGPT account', { id_token: noAccountClaim, access_token: 'opaque-access-token-123', refresh_token: valid.refresh_token }],
    ['an account_id the id_token does not carry', { ...valid, account_id: 'someone-else' }],
    ['an API-key auth.json', { auth_mode: 'apikey', OPENAI_API_KEY: 'sk-not-a-login-0123456789' }],
    ['a refresh token that is a number', { id_token: valid.id_token, access_token: valid.access_token, refresh_token: 12345 }],
    ['a refresh token that is a boolean', { id_token: valid.id_token, access_token: valid.access_token, refresh_token: true }],
    ['a refresh token in a list', { id_token: valid.id_token, access_token: valid.access_token, refresh_token: [valid.refresh_token] }],
    ['auth.json with a numeric access token', { auth_mode: 'chatgpt', tokens: { id_token: valid.id_token, access_token: 42, refresh_token: valid.refresh_token } }],
    ['a numeric account_id', { ...valid, account_id: 7 }],
    ['a form body', 'id_token=a&access_token=b&refresh_token=c', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['a body over the limit', { id_token: 'x'.repeat(600 * 1024), access_token: valid.access_token, refresh_token: valid.refresh_token }]
  ]
  for (const [what, body, headers] of imports) {
    assertErrorBody(await call(stack, 'POST', '/accounts/import', body, headers), 'any4xx', what)
  }
  const oddIds = ['..%2Fx', '..%2F..%2Fcodex_tokens.json', 'a'.repeat(200), 'a%20b', '%00', 'x.y', '%E0%A4%A']
  for (const id of oddIds) {
    for (const [method, path] of [['DELETE', `/accounts/${id}`], ['POST', `/accounts/${id}/refresh`], ['POST', `/accounts/${id}/enable`]] as const) {
      assertErrorBody(await call(stack, method, path), 'any4xx', `${method} ${path}`)
    }
  }
  assert.deepEqual(await readFile(storeFile(stack)), before, 'the token file is byte-identical')
  const views = await accounts(stack)
  assert.deepEqual(views.map((v) => v.id), [account.id])
  assert.equal(views[0]!.status, 'active')
  assert.equal(stack.fake.issuer.refreshCalls, 0)
})

test('the API takes an account\'s email wherever it takes an id, and GET /accounts/:id answers one account', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'Second@Example.com' })
  stack.fake.backend.setExhausted(first.accountId, { resetsInSeconds: 600 })
  await drain(await postResponses(stack))
  stack.fake.backend.setExhausted(first.accountId, null)
  const email = encodeURIComponent('first@example.com')

  const one = await call(stack, 'GET', `/accounts/${email}`)
  assert.equal(one.status, 200, one.text)
  assert.deepEqual(one.json, (await accounts(stack))[0], 'the same view as in the list')
  assert.equal((await call(stack, 'GET', `/accounts/${second.id}`)).json.email, 'Second@Example.com')
  assert.equal((await call(stack, 'GET', '/accounts/second%40example.com')).json.id, second.id, 'emails match in any case')
  assert.equal((await call(stack, 'GET', `/accounts/${first.accountId}`)).json.id, first.id, 'and so does the ChatGPT account id')

  const enabled = await call(stack, 'POST', `/accounts/${email}/enable`)
  assert.equal(enabled.status, 200, enabled.text)
  assert.equal(enabled.json.status, 'active')
  const selected = await call(stack, 'POST', `/accounts/${email}/select`)
  assert.equal(selected.status, 200, selected.text)
  assert.equal(selected.json.current, true)
  const refreshed = await call(stack, 'POST', `/accounts/${email}/refresh`)
  assert.equal(refreshed.status, 200, refreshed.text)
  assert.equal(stack.fake.issuer.refreshCalls, 1)
  assertErrorBody(await call(stack, 'GET', '/accounts/nobody%40example.com'), 404, 'an unknown email')

  // One person signed in to two workspaces: the email no longer says which, the id does.
  await stack.addAccount({ email: 'first@example.com' })
  const ambiguous = await call(stack, 'DELETE', `/accounts/${email}`)
  assertErrorBody(ambiguous, 409, 'an email of two accounts')
  assert.match(ambiguous.json.error.message, new RegExp(`matches 2 accounts \\(${first.id}, \\w{12}\\); use the id`))
  assert.equal((await accounts(stack)).length, 3, 'nothing removed')
  assert.equal((await call(stack, 'DELETE', `/accounts/${first.id}`)).status, 204)
  assert.equal((await call(stack, 'DELETE', `/accounts/${email}`)).status, 204)
  assert.deepEqual((await accounts(stack)).map((view) => view.id), [second.id])
})

test('a wrong method on a known path gets 405 with Allow; an unknown path stays 404', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  const cases: Array<[string, string, string]> = [
    ['PUT', '/accounts', 'GET, HEAD'],
    ['POST', `/accounts/${account.id}`, 'GET, HEAD, PATCH, DELETE'],
    ['PUT', `/accounts/${account.id}`, 'GET, HEAD, PATCH, DELETE'],
    ['GET', `/accounts/${account.id}/refresh`, 'POST'],
    ['GET', '/auth/device', 'POST'],
    ['POST', '/healthz', 'GET, HEAD'],
    ['DELETE', '/auth/callback-url', 'POST']
  ]
  for (const [method, path, allow] of cases) {
    const response = await fetch(`${stack.url}${path}`, { method })
    const text = await response.text()
    assert.equal(response.status, 405, `${method} ${path}: ${text}`)
    assert.equal(response.headers.get('allow'), allow, `${method} ${path}`)
    const error = (JSON.parse(text) as { error: { type: string, message: string } }).error
    assert.equal(error.type, 'method_not_allowed')
    assert.match(error.message, new RegExp(`^${method} is not allowed on `))
  }
  const unknown = await call(stack, 'GET', '/no/such/path')
  assertErrorBody(unknown, 404, 'an unknown path')
  assert.equal((await accounts(stack))[0]!.status, 'active', 'nothing changed')
  assert.equal(stack.fake.issuer.refreshCalls, 0)
})

test('schema errors read as sentences, never as regular expressions', async (t) => {
  const stack = await startStack(t)
  const cases: Array<[string, string, unknown, string]> = [
    ['POST', '/accounts/a%20b/refresh', undefined, 'the id in the path holds characters that are not allowed there'],
    ['GET', '/auth/login/a%20b', undefined, 'the id in the path holds characters that are not allowed there'],
    ['POST', '/accounts/import', { id_token: 5 }, 'id_token in the body must be text'],
    ['POST', '/accounts/import', { tokens: { id_token: 'a' } }, 'tokens in the body must have access_token and refresh_token'],
    ['POST', '/accounts/import', { tokens: 5 }, 'tokens in the body must be an object'],
    ['POST', '/accounts/import', { id_token: 'a', access_token: 'b', refresh_token: 'c', account_id: '' }, 'account_id in the body must not be empty'],
    ['POST', '/accounts/import', { id_token: 'a', access_token: 'b', refresh_token: 'c', account_id: 7 }, 'account_id in the body must be null or text'],
    ['POST', '/auth/callback-url', {}, 'the body must have url']
  ]
  for (const [method, path, body, message] of cases) {
    const answer = await call(stack, method, path, body)
    assertErrorBody(answer, 400, `${method} ${path}`)
    assert.equal(answer.json.error.type, 'invalid_request')
    assert.equal(answer.json.error.message, message, `${method} ${path} ${JSON.stringify(body)}`)
    assert.doesNotMatch(answer.json.error.message, /pattern|[\^$[\]{}\\]/)
  }
})
