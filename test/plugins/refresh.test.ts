import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { CLIENT_ID } from '../fakes/index.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'

type View = Record<string, any>

const views = async (stack: Stack): Promise<View[]> => await (await fetch(`${stack.url}/accounts`)).json() as View[]
const latest = (stack: Stack, accountId: string) => stack.fake.accounts.find((a) => a.accountId === accountId)!.tokens

async function turn (stack: Stack, conversation = 'conv'): Promise<Response> {
  const response = await postResponses(stack, responsesBody('hi', { prompt_cache_key: conversation }))
  await response.text()
  return response
}

/** Uses a refresh token elsewhere, as a Codex CLI sharing the login would. */
async function refreshElsewhere (stack: Stack, refreshToken: string): Promise<void> {
  const response = await fetch(`${stack.fake.issuerUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: CLIENT_ID, grant_type: 'refresh_token', refresh_token: refreshToken })
  })
  assert.equal(response.status, 200)
}

test('requests that all need a refresh share one: the single-use refresh token is never sent twice', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  stack.fake.backend.revokeAccessTokens(account.accountId)
  stack.fake.issuer.delayRefreshMs = 1000
  const responses = await Promise.all(Array.from({ length: 6 }, (_, i) => turn(stack, `conv-${i}`)))
  assert.deepEqual(responses.map((r) => r.status), [200, 200, 200, 200, 200, 200])
  assert.equal(stack.fake.issuer.refreshCalls, 1)
  const view = (await views(stack))[0]!
  assert.equal(view.status, 'active', 'no refresh_token_reused')
  assert.equal(view.requests, 6)
})

test('an access token close to its exp is refreshed before it is used: the backend never sees it expire', async (t) => {
  // Tokens live 20 s: below the pool's must-refresh threshold, so the request waits for a new one.
  const stack = await startStack(t, { fake: { accessTokenTtlSec: 20 } })
  const account = await stack.addAccount()
  const old = account.tokens
  const response = await turn(stack)
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '1', 'no failed attempt')
  assert.equal(stack.fake.issuer.refreshCalls, 1)
  const fresh = latest(stack, account.accountId)
  assert.notEqual(fresh.access_token, old.access_token)
  assert.deepEqual(stack.fake.backend.requests.map((r) => r.headers.authorization), [`Bearer ${fresh.access_token}`])
})

test('a token within the refresh margin keeps serving while a background refresh replaces it', async (t) => {
  // Tokens live 10 min and the margin is 15 min: every token is "due", yet still valid.
  const stack = await startStack(t, { fake: { accessTokenTtlSec: 600 }, build: { refreshMarginMs: 15 * 60_000 } })
  const account = await stack.addAccount()
  const old = account.tokens
  stack.fake.issuer.delayRefreshMs = 300
  const refreshed = once(stack.app.pool, 'refresh')
  const response = await turn(stack)
  assert.equal(response.status, 200)
  assert.equal(stack.fake.backend.requests[0]!.headers.authorization, `Bearer ${old.access_token}`, 'served at once with the still valid token')
  assert.deepEqual(await refreshed, [{ account: account.id, result: 'ok' }])
  const fresh = latest(stack, account.accountId)
  assert.notEqual(fresh.access_token, old.access_token, 'refreshed in the background')
  stack.fake.issuer.delayRefreshMs = 0
  await turn(stack)
  assert.equal(stack.fake.backend.requests[1]!.headers.authorization, `Bearer ${fresh.access_token}`)
})

/** An issuer that refuses every refresh with a 401 of its own making. */
async function refusingIssuer (t: TestContext): Promise<{ url: string, calls: () => number }> {
  let calls = 0
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      calls++
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'unauthorized_client', error_description: 'this client may not refresh' }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls: () => calls }
}

const permanentFailures: Array<[string, RegExp, (t: TestContext) => Promise<{ stack: Stack, refreshCalls: () => number, sabotage: (accountId: string, refreshToken: string) => Promise<void> }>]> = [
  ['refresh_token_expired', /refresh_token_expired/, async (t) => {
    const stack = await startStack(t)
    return { stack, refreshCalls: () => stack.fake.issuer.refreshCalls, sabotage: async (id) => { stack.fake.issuer.failRefresh(id, 'expired') } }
  }],
  ['refresh_token_invalidated', /refresh_token_invalidated/, async (t) => {
    const stack = await startStack(t)
    return { stack, refreshCalls: () => stack.fake.issuer.refreshCalls, sabotage: async (id) => { stack.fake.issuer.failRefresh(id, 'invalidated') } }
  }],
  ['refresh_token_reused', /refresh_token_reused/, async (t) => {
    const stack = await startStack(t)
    return { stack, refreshCalls: () => stack.fake.issuer.refreshCalls, sabotage: async (_id, refreshToken) => { await refreshElsewhere(stack, refreshToken) } }
  }],
  ['any other 401', /sign in/, async (t) => {
    const issuer = await refusingIssuer(t)
    const stack = await startStack(t, { settings: { issuer: issuer.url } })
    return { stack, refreshCalls: issuer.calls, sabotage: async () => {} }
  }]
]

for (const [what, reason, setUp] of permanentFailures) {
  test(`a refresh refused with ${what} marks the account "needs login" and is not tried again`, async (t) => {
    const { stack, refreshCalls, sabotage } = await setUp(t)
    const first = await stack.addAccount()
    const second = await stack.addAccount({ email: 'second@example.com' })
    await sabotage(first.accountId, first.tokens.refresh_token)
    const before = refreshCalls()
    stack.fake.backend.revokeAccessTokens(first.accountId)
    const response = await turn(stack)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('x-codex-eq-account'), second.id, 'the next account answered the same request')
    assert.equal(refreshCalls(), before + 1)
    const a = (await views(stack))[0]!
    assert.equal(a.status, 'needs_login')
    assert.match(a.reason, reason)
    assert.equal(a.disabled_until, null, 'no cooldown: only a login helps')

    const calls = stack.fake.backend.requests.length
    for (let i = 0; i < 3; i++) assert.equal((await turn(stack, `later-${i}`)).status, 200)
    assert.equal(refreshCalls(), before + 1, 'no more refresh attempts')
    assert.ok(stack.fake.backend.requests.slice(calls).every((r) => r.accountId === second.accountId), 'the account is skipped')
  })
}

test('a refresh that fails for a passing reason (the issuer\'s 5xx) neither asks for a login nor disables: the account waits briefly for the issuer', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  await stack.addAccount()
  stack.fake.issuer.failRefresh(first.accountId, 'server_error')
  stack.fake.backend.revokeAccessTokens(first.accountId)
  const before = Date.now()
  assert.equal((await turn(stack)).status, 200)
  const a = (await views(stack))[0]!
  assert.equal(a.status, 'resting')
  assert.equal(a.disabled_source, 'issuer')
  assert.match(a.reason, /waiting for the issuer/)
  assert.ok(Date.parse(a.disabled_until) <= Date.now() + 30_000 && Date.parse(a.disabled_until) >= before + 1000, `a short wait: ${a.disabled_until}`)
})

test('every account needing a login: the pool says so at once instead of calling upstream', async (t) => {
  const stack = await startStack(t)
  const only = await stack.addAccount()
  stack.fake.issuer.failRefresh(only.accountId, 'invalidated')
  stack.fake.backend.revokeAccessTokens(only.accountId)
  const first = await postResponses(stack)
  assert.equal(first.status, 503)
  assert.equal(((await first.json()) as { error: { type: string } }).error.type, 'no_usable_account')
  const calls = stack.fake.backend.requests.length
  const refreshes = stack.fake.issuer.refreshCalls
  const again = await postResponses(stack)
  assert.equal(again.status, 503)
  await again.text()
  assert.equal(stack.fake.backend.requests.length, calls)
  assert.equal(stack.fake.issuer.refreshCalls, refreshes)
})
