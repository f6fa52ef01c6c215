/**
 * A full run of the real server process at the most talkative log level (trace, which includes
 * debug): logins, imports, proxied turns, refreshes, failovers and errors of every kind. Then its
 * whole output, and every answer it gave, is searched for every secret that went through it: each
 * token the fakes issued, the admin token, the API key, the cookie, the OAuth codes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { codexAuthJson } from '../fakes/index.js'
import { responsesBody } from '../helpers/stack.js'
import { fakesForProcess, spawnServer } from '../reliability/server-process.js'

const ADMIN_TOKEN = 'admin-secret-4d1f0c9e8b7a'
const API_KEY = 'api-secret-9f8e7d6c5b4a'
const COOKIE_VALUE = 'cookie-secret-13579bdf'

test('no token, Authorization header, cookie or OAuth code in any log line, answer or error message of a full run', async (t) => {
  const { fake, env } = await fakesForProcess(t)
  const server = await spawnServer(t, {
    args: ['--log-level', 'trace', '--admin-token', ADMIN_TOKEN, '--api-key', API_KEY, '--callback-port', '0', '--cooldown', '1h'],
    env
  })
  const answers: string[] = []
  const call = async (method: string, path: string, o: { body?: unknown, raw?: string, headers?: Record<string, string>, admin?: boolean } = {}): Promise<{ status: number, text: string }> => {
    const headers: Record<string, string> = { ...(o.admin === false ? {} : { authorization: `Bearer ${ADMIN_TOKEN}` }), ...o.headers }
    if (o.body !== undefined || o.raw !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(`${server.url}${path}`, { method, headers, redirect: 'manual', body: o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body)) })
    const text = await response.text()
    answers.push(text)
    return { status: response.status, text }
  }
  const turn = async (text: string, authorization = `Bearer ${API_KEY}`): Promise<{ status: number, text: string }> => {
    return await call('POST', '/v1/responses', { body: responsesBody(text, { prompt_cache_key: `conv-${text}` }), admin: false, headers: { authorization, cookie: `session=${COOKIE_VALUE}`, accept: 'text/event-stream' } })
  }
  const codes: string[] = []

  // A browser login, through the issuer's redirect to the callback listener.
  const login = JSON.parse((await call('POST', '/auth/login')).text) as { login_id: string, authorize_url: string }
  const redirect = await fetch(login.authorize_url, { redirect: 'manual' })
  const callback = new URL(redirect.headers.get('location')!)
  codes.push(callback.searchParams.get('code')!)
  const page = await fetch(callback)
  assert.equal(page.status, 200)
  answers.push(await page.text())
  assert.equal(JSON.parse((await call('GET', `/auth/login/${login.login_id}`)).text).status, 'complete')
  // The same code once more, pasted: refused without repeating it.
  assert.equal((await call('POST', '/auth/callback-url', { body: { url: callback.href } })).status >= 400, true)

  // A device login.
  const device = JSON.parse((await call('POST', '/auth/device')).text) as { id: string, user_code: string }
  fake.issuer.approveDevice(device.user_code)
  for (let i = 0; i < 100 && JSON.parse((await call('GET', `/auth/device/${device.id}`)).text).status !== 'complete'; i++) await sleep(100)

  // Imports: the token triple, Codex's auth.json, and broken ones carrying real secrets.
  const third = fake.addAccount({ email: 'third@example.com' })
  assert.equal((await call('POST', '/accounts/import', { body: { id_token: third.tokens.id_token, access_token: third.tokens.access_token, refresh_token: third.tokens.refresh_token } })).status, 201)
  const fourth = fake.addAccount({ email: 'fourth@example.com' })
  assert.equal((await call('POST', '/accounts/import', { body: codexAuthJson(fourth.tokens) })).status, 201)
  const leaked = fake.mintTokens(fourth.accountId)
  assert.equal((await call('POST', '/accounts/import', { body: { id_token: 'not-a-jwt', access_token: leaked.access_token, refresh_token: leaked.refresh_token } })).status, 400)
  assert.equal((await call('POST', '/accounts/import', { body: { id_token: leaked.refresh_token, access_token: leaked.access_token, refresh_token: 7 } })).status, 400)
  assert.equal((await call('POST', '/accounts/import', { raw: `{"refresh_token":"${leaked.refresh_token}"` })).status, 400)
  assert.equal((await call('POST', '/accounts/import', { raw: `{"refresh_token":${leaked.refresh_token}}` })).status, 400)

  const accounts = JSON.parse((await call('GET', '/accounts')).text) as Array<{ id: string, account_id: string }>
  assert.equal(accounts.length, 4)
  const idOf = (accountId: string): string => accounts.find((view) => view.account_id === accountId)!.id
  const [a, b, c, d] = fake.accounts.map((account) => account.accountId).filter((accountId) => accounts.some((view) => view.account_id === accountId)) as [string, string, string, string]

  // Turns: plain, after a revoked token (401, refresh), over a usage limit, a 403 ladder (retry, refresh), over a 5xx, a dropped stream.
  assert.equal((await turn('hello')).status, 200)
  fake.backend.revokeAccessTokens(a)
  assert.equal((await turn('after revoke')).status, 200)
  fake.backend.setExhausted(a, { resetsInSeconds: 600 })
  assert.equal((await turn('over the limit')).status, 200)
  fake.backend.script(b, { kind: 'status', status: 403 }, { kind: 'status', status: 403 }, { kind: 'status', status: 403 })
  assert.equal((await turn('forbidden')).status, 200)
  fake.backend.script(c, { kind: 'drop', afterEvents: 4 })
  await turn('dropped').catch(() => {})
  fake.backend.script(c, { kind: 'status', status: 502 })
  assert.equal((await turn('bad gateway')).status, 200)
  // Wrong credentials, which must not be echoed.
  assert.equal((await turn('wrong key', `Bearer ${ADMIN_TOKEN}`)).status, 401)
  assert.equal((await call('GET', '/accounts', { headers: { authorization: `Bearer ${API_KEY}` } })).status, 401)

  // Refreshes: forced, failing for a while (issuer down), refused for good, then a removal.
  assert.equal((await call('POST', `/accounts/${idOf(d)}/refresh`)).status, 200)
  fake.issuer.failRefresh(d, 'down')
  assert.equal((await call('POST', `/accounts/${idOf(d)}/refresh`)).status, 502)
  fake.issuer.failRefresh(d, 'invalidated')
  assert.equal((await call('POST', `/accounts/${idOf(d)}/refresh`)).status, 409)
  assert.equal((await call('DELETE', `/accounts/${idOf(d)}`)).status, 204)
  assert.equal((await call('GET', '/accounts')).status, 200)
  assert.equal((await call('GET', '/metrics')).status, 200)

  process.kill(server.pid, 'SIGTERM')
  assert.deepEqual(await server.exited, { code: 0, signal: null })

  const output = server.logs.map((line) => JSON.stringify(line)).join('\n') + '\n' + server.text()
  const issued = fake.allIssuedSecrets()
  assert.ok(issued.length >= 30, `the run saw many tokens (${issued.length})`)
  const messages = new Set(server.logs.map((line) => line.msg))
  for (const event of ['browser login added an account', 'device login added an account', 'proxied', 'tokens refreshed', 'account cooling down', 'account disabled',
    'upstream stream broke', 'token refresh failed; will retry', 'refresh token refused for good: the account needs a new login']) {
    assert.ok(messages.has(event), `the run went through "${event}"`)
  }
  const secrets = [
    ...issued.map((token) => ({ what: 'an issued token', value: token })),
    ...issued.filter((token) => token.includes('.')).map((token) => ({ what: 'a token\'s signature', value: token.split('.')[2]! })),
    { what: 'the admin token', value: ADMIN_TOKEN },
    { what: 'the API key', value: API_KEY },
    { what: 'the cookie', value: COOKIE_VALUE },
    ...codes.map((code) => ({ what: 'an OAuth code', value: code }))
  ]
  for (const secret of secrets) {
    assert.ok(!output.includes(secret.value), `the output holds ${secret.what} (${secret.value.slice(0, 10)}…)`)
    const answer = answers.find((text) => text.includes(secret.value))
    assert.equal(answer, undefined, `an answer holds ${secret.what}: ${answer?.slice(0, 300)}`)
  }
  assert.doesNotMatch(output, /bearer\s/i, 'no Authorization header value')
})
