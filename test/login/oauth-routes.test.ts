import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CLIENT_ID } from '../fakes/index.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { authorize, closedSoon, listening, occupyPort, signIn } from './browser.js'

const ADMIN = 'admin-token-for-tests'

interface View { id: string, email: string, account_id: string, status: string, token: string }
interface LoginStatus { status: string, account?: View, error?: string }

async function accounts (stack: Stack): Promise<View[]> {
  const answer = await fetch(`${stack.url}/accounts`, { headers: adminHeader(stack) })
  return await answer.json() as View[]
}

function adminHeader (stack: Stack): Record<string, string> {
  return stack.config.adminToken === null ? {} : { authorization: `Bearer ${stack.config.adminToken}` }
}

async function startLogin (stack: Stack): Promise<{ login_id: string, authorize_url: string, expires_at: string }> {
  const answer = await fetch(`${stack.url}/auth/login`, { method: 'POST', headers: adminHeader(stack) })
  assert.equal(answer.status, 200, await answer.clone().text())
  return await answer.json() as { login_id: string, authorize_url: string, expires_at: string }
}

async function loginStatus (stack: Stack, path: string): Promise<LoginStatus> {
  const answer = await fetch(`${stack.url}${path}`, { headers: adminHeader(stack) })
  assert.equal(answer.status, 200)
  return await answer.json() as LoginStatus
}

function portOf (url: string): number {
  return Number(new URL(url).port)
}

/** Nothing secret of the login reached the log: no code, state, verifier or token. */
function assertLogsClean (stack: Stack, secrets: string[]): void {
  const text = JSON.stringify(stack.logs)
  for (const secret of [...secrets, ...stack.fake.allIssuedSecrets()]) {
    assert.ok(!text.includes(secret), `the log holds a secret (${secret.slice(0, 8)}…)`)
  }
}

test('GET /auth/login sends the browser to the issuer with every PKCE parameter; the callback stores the account and closes', async (t) => {
  const stack = await startStack(t)
  const person = stack.fake.addAccount({ email: 'alice@example.com', plan: 'pro' })
  stack.fake.nextLogin = person.accountId

  const start = await fetch(`${stack.url}/auth/login`, { redirect: 'manual' })
  assert.equal(start.status, 302)
  const authorizeUrl = new URL(start.headers.get('location')!)
  assert.equal(authorizeUrl.origin + authorizeUrl.pathname, `${stack.fake.issuerUrl}/oauth/authorize`)
  const q = Object.fromEntries(authorizeUrl.searchParams)
  const callbackPort = portOf(q.redirect_uri!)
  assert.ok(callbackPort > 0, 'the port actually bound, not the configured 0')
  assert.equal(q.redirect_uri, `http://localhost:${callbackPort}/auth/callback`)
  assert.equal(q.response_type, 'code')
  assert.equal(q.client_id, CLIENT_ID)
  assert.equal(q.scope, 'openid profile email offline_access')
  assert.match(q.code_challenge!, /^[A-Za-z0-9_-]{43}$/)
  assert.equal(q.code_challenge_method, 'S256')
  assert.equal(q.id_token_add_organizations, 'true')
  assert.equal(q.codex_cli_simplified_flow, 'true')
  assert.equal(q.originator, 'codex_cli_rs')
  assert.match(q.state!, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url')
  assert.equal(await listening(callbackPort), true, 'the callback listener runs while the login is pending')

  const { callbackUrl, status, html } = await signIn(authorizeUrl.href)
  assert.equal(status, 200)
  assert.match(html, /alice@example\.com/)
  const port = portOf(stack.url)
  assert.ok(html.includes(`href="http://127.0.0.1:${port}/"`), 'the page leads back to the dashboard')

  const [account] = await accounts(stack)
  assert.equal(account?.email, 'alice@example.com')
  assert.equal(account.account_id, person.accountId)
  assert.equal(account.status, 'active')
  assert.equal(stack.fake.issuer.tokenExchanges, 1)
  await closedSoon(callbackPort)

  const code = new URL(callbackUrl).searchParams.get('code')!
  assertLogsClean(stack, [code, q.state!, q.code_challenge!])
})

test('following every redirect from GET /auth/login ends on the success page', async (t) => {
  const stack = await startStack(t)
  const page = await fetch(`${stack.url}/auth/login`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /text\/html/)
  assert.equal(page.headers.get('referrer-policy'), 'no-referrer', 'the link back must not leak the code as a Referer')
  assert.match(await page.text(), /Account added/)
  assert.equal((await accounts(stack)).length, 1)
})

test('several logins in a row add several accounts; signing in to a present account updates it', async (t) => {
  const stack = await startStack(t)
  const one = stack.fake.addAccount({ email: 'one@example.com' })
  const two = stack.fake.addAccount({ email: 'two@example.com' })
  const started = []
  for (const person of [one, two]) {
    stack.fake.nextLogin = person.accountId
    const login = await startLogin(stack)
    started.push(login)
    assert.equal((await signIn(login.authorize_url)).status, 200)
  }
  const before = await accounts(stack)
  assert.deepEqual(before.map((a) => a.email), ['one@example.com', 'two@example.com'])

  stack.fake.nextLogin = one.accountId
  const again = await startLogin(stack)
  assert.equal((await signIn(again.authorize_url)).status, 200)
  const after = await accounts(stack)
  assert.equal(after.length, 2, 'no duplicate')
  assert.equal(after[0]!.id, before[0]!.id)
  assert.notEqual(after[0]!.token, before[0]!.token, 'the fresh tokens replaced the old ones')
  const status = await loginStatus(stack, `/auth/login/${again.login_id}`)
  assert.equal(status.status, 'complete')
  assert.equal(status.account?.id, before[0]!.id)
})

test('a forged state gets 400 and stores nothing; the real login still finishes', async (t) => {
  const stack = await startStack(t)
  const login = await startLogin(stack)
  const callbackUrl = new URL(await authorize(login.authorize_url))
  const forged = new URL(callbackUrl)
  forged.searchParams.set('state', 'forged-state-of-an-attacker')
  const answer = await fetch(forged)
  assert.equal(answer.status, 400)
  assert.match(await answer.text(), /unknown or already finished/)
  const noState = new URL(callbackUrl)
  noState.searchParams.delete('state')
  assert.equal((await fetch(noState)).status, 400)
  assert.equal(stack.fake.issuer.tokenExchanges, 0, 'the code was not even exchanged')
  assert.deepEqual(await accounts(stack), [])
  assert.equal((await loginStatus(stack, `/auth/login/${login.login_id}`)).status, 'pending')

  assert.equal((await fetch(callbackUrl)).status, 200)
  assert.equal((await accounts(stack)).length, 1)
  await closedSoon(portOf(callbackUrl.href))
})

test('a refused consent adds nothing, says so, and frees the callback port', async (t) => {
  const stack = await startStack(t)
  stack.fake.consent = 'deny'
  const login = await startLogin(stack)
  const { callbackUrl, status, html } = await signIn(login.authorize_url)
  assert.equal(new URL(callbackUrl).searchParams.get('error'), 'access_denied')
  assert.equal(status, 403)
  assert.match(html, /refused/)
  assert.deepEqual(await accounts(stack), [])
  assert.equal(stack.fake.issuer.tokenExchanges, 0)
  const state = await loginStatus(stack, `/auth/login/${login.login_id}`)
  assert.equal(state.status, 'failed')
  assert.match(state.error!, /access_denied/)
  await closedSoon(portOf(callbackUrl))
})

test('with an admin token the login endpoints need it; the dashboard flow polls the login to its end', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  for (const [method, path] of [['GET', '/auth/login'], ['POST', '/auth/login'], ['GET', '/auth/login/abc'], ['POST', '/auth/device'], ['GET', '/auth/device/abc'], ['POST', '/auth/callback-url']]) {
    const answer = await fetch(`${stack.url}${path}`, { method, redirect: 'manual' })
    assert.equal(answer.status, 401, `${method} ${path}`)
    assert.equal(((await answer.json()) as { error: { type: string } }).error.type, 'unauthorized')
  }
  const login = await startLogin(stack)
  assert.match(login.login_id, /^[A-Za-z0-9_-]+$/)
  const expires = Date.parse(login.expires_at) - Date.now()
  assert.ok(expires > 9 * 60_000 && expires <= 10 * 60_000, 'ten minutes to finish')
  assert.ok(!login.authorize_url.includes(login.login_id), 'the login id is not the OAuth state')
  assert.equal((await loginStatus(stack, `/auth/login/${login.login_id}`)).status, 'pending')
  await signIn(login.authorize_url)
  const done = await loginStatus(stack, `/auth/login/${login.login_id}`)
  assert.equal(done.status, 'complete')
  assert.deepEqual(done.account, (await accounts(stack))[0])
  const unknown = await fetch(`${stack.url}/auth/login/nosuchlogin`, { headers: adminHeader(stack) })
  assert.equal(unknown.status, 404)
  const bad = await fetch(`${stack.url}/auth/login/${'x'.repeat(100)}`, { headers: adminHeader(stack) })
  assert.equal(bad.status, 400)
})

test('a pasted redirect URL finishes the login with the pending verifier', async (t) => {
  const stack = await startStack(t)
  const person = stack.fake.addAccount({ email: 'remote@example.com' })
  stack.fake.nextLogin = person.accountId
  const login = await startLogin(stack)
  // The browser ended on localhost:1455 of another machine, where nothing listens: the user copies the address.
  const callbackUrl = await authorize(login.authorize_url)
  const paste = async (body: unknown): Promise<Response> => await fetch(`${stack.url}/auth/callback-url`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })

  for (const [body, type] of [
    [{ url: 'not a url at all' }, 'invalid_url'],
    [{ url: 'http://localhost:1455/somewhere?code=x&state=y' }, 'invalid_url'],
    [{ url: callbackUrl.replace(/state=[^&]+/, 'state=guessed') }, 'unknown_state'],
    [{ link: callbackUrl }, 'invalid_request'],
    [{ url: { href: callbackUrl } }, 'invalid_request']
  ] as const) {
    const answer = await paste(body)
    assert.equal(answer.status, 400, JSON.stringify(body))
    assert.equal(((await answer.json()) as { error: { type: string } }).error.type, type)
  }
  assert.equal(stack.fake.issuer.tokenExchanges, 0)

  const answer = await paste({ url: callbackUrl.replace(/^http:\/\//, '') })
  assert.equal(answer.status, 200)
  const { account } = await answer.json() as { account: View }
  assert.equal(account.email, 'remote@example.com')
  assert.deepEqual((await accounts(stack)).map((a) => a.id), [account.id])
  assert.equal((await loginStatus(stack, `/auth/login/${login.login_id}`)).status, 'complete')

  const twice = await paste({ url: callbackUrl })
  assert.equal(twice.status, 400, 'a used redirect cannot be replayed')
  await closedSoon(portOf(new URL(callbackUrl).href))
})

test('a pasted refusal fails the login with 403 access_denied', async (t) => {
  const stack = await startStack(t)
  stack.fake.consent = 'deny'
  const login = await startLogin(stack)
  const answer = await fetch(`${stack.url}/auth/callback-url`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: await authorize(login.authorize_url) })
  })
  assert.equal(answer.status, 403)
  const body = await answer.json() as { error: { type: string, message: string } }
  assert.equal(body.error.type, 'access_denied')
  assert.equal((await loginStatus(stack, `/auth/login/${login.login_id}`)).status, 'failed')
})

test('a login finished after ten minutes is refused as expired', async (t) => {
  let now = Date.now()
  const stack = await startStack(t, { build: { clock: { now: () => now } } })
  const login = await startLogin(stack)
  const callbackUrl = await authorize(login.authorize_url)
  now += 10 * 60_000 + 1
  assert.equal((await loginStatus(stack, `/auth/login/${login.login_id}`)).status, 'expired')
  const page = await fetch(callbackUrl)
  assert.equal(page.status, 410)
  assert.match(await page.text(), /expired/)
  assert.deepEqual(await accounts(stack), [])
  assert.equal(stack.fake.issuer.tokenExchanges, 0)
  await closedSoon(portOf(callbackUrl))
})

test('a device-code login: the user types the code, the status turns complete with the account, through an issuer failing for a moment', async (t) => {
  const stack = await startStack(t)
  const person = stack.fake.addAccount({ email: 'device@example.com' })
  const answer = await fetch(`${stack.url}/auth/device`, { method: 'POST', headers: { 'content-type': 'application/json' } })
  assert.equal(answer.status, 200)
  const device = await answer.json() as { id: string, user_code: string, verification_url: string, interval: number, expires_at: string }
  assert.equal(device.verification_url, `${stack.fake.issuerUrl}/codex/device`)
  assert.equal(device.interval, 1)
  assert.ok(Date.parse(device.expires_at) - Date.now() > 14 * 60_000, 'fifteen minutes to type the code')
  assert.equal((await loginStatus(stack, `/auth/device/${device.id}`)).status, 'pending')

  // The issuer failing for a moment (500) does not end the login: polling goes on.
  stack.fake.issuer.failDevicePolls = 2
  stack.fake.issuer.approveDevice(device.user_code, person.accountId)
  let status: LoginStatus
  const deadline = Date.now() + 15_000
  do {
    await new Promise((resolve) => setTimeout(resolve, 100))
    status = await loginStatus(stack, `/auth/device/${device.id}`)
  } while (status.status === 'pending' && Date.now() < deadline)
  assert.equal(status.status, 'complete')
  assert.equal(stack.fake.issuer.failDevicePolls, 0, 'the failing polls were asked')
  assert.equal(status.account?.email, 'device@example.com')
  assert.equal((await accounts(stack))[0]?.email, 'device@example.com')
  assertLogsClean(stack, [device.user_code])
})

test('a busy callback port gives a clear 409 after asking its holder to cancel', async (t) => {
  let cancelAsked = false
  const port = await occupyPort(t, (_server, path) => { if (path === '/cancel') cancelAsked = true })
  const stack = await startStack(t, { settings: { callbackPort: String(port) } })
  const answer = await fetch(`${stack.url}/auth/login`, { method: 'POST' })
  assert.equal(answer.status, 409)
  const body = await answer.json() as { error: { type: string, message: string } }
  assert.equal(body.error.type, 'port_busy')
  assert.match(body.error.message, new RegExp(`callback port ${port} is in use`))
  assert.equal(cancelAsked, true, 'GET /cancel was tried to free a stale Codex login')
})

test('a stale Codex login on the callback port is cancelled, then the login proceeds', async (t) => {
  const port = await occupyPort(t, (server, path) => {
    if (path === '/cancel') server.close() // what Codex's own login server does
  })
  const stack = await startStack(t, { settings: { callbackPort: String(port) } })
  const login = await startLogin(stack)
  assert.equal(new URL(login.authorize_url).searchParams.get('redirect_uri'), `http://localhost:${port}/auth/callback`)
  assert.equal((await signIn(login.authorize_url)).status, 200)
  assert.equal((await accounts(stack)).length, 1)
})

test('two pending logins share one callback listener; it closes only when both have ended', async (t) => {
  const stack = await startStack(t)
  const [first, second] = await Promise.all([startLogin(stack), startLogin(stack)])
  const port = portOf(new URL(first.authorize_url).searchParams.get('redirect_uri')!)
  assert.equal(portOf(new URL(second.authorize_url).searchParams.get('redirect_uri')!), port)
  assert.equal((await signIn(first.authorize_url)).status, 200)
  assert.equal(await listening(port), true, 'still open for the second login')
  assert.equal((await signIn(second.authorize_url)).status, 200)
  await closedSoon(port)
  assert.equal((await accounts(stack)).length, 2)
})

test('GET /cancel on the callback port ends the pending logins and frees the port, as Codex\'s login server does', async (t) => {
  const stack = await startStack(t)
  const login = await startLogin(stack)
  const callbackUrl = await authorize(login.authorize_url)
  const port = portOf(callbackUrl)
  const answer = await fetch(`http://127.0.0.1:${port}/cancel`)
  assert.equal(answer.status, 200)
  assert.match(await answer.text(), /cancelled/)
  await closedSoon(port)
  const state = await loginStatus(stack, `/auth/login/${login.login_id}`)
  assert.equal(state.status, 'failed')
  assert.match(state.error!, /cancelled/)
  const late = await fetch(`${stack.url}/auth/callback-url`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: callbackUrl }) })
  assert.equal(late.status, 400, 'a cancelled login cannot be finished any more')
  assert.deepEqual(await accounts(stack), [])
})
