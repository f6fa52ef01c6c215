import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { startHttpProxy, startSocks5Proxy } from '../helpers/egress-proxies.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'

const HTTP_PASSWORD = 'http-pass-4821'
const SOCKS_PASSWORD = 'socks-pass-9137'

async function call (stack: Stack, method: string, path: string, body?: unknown): Promise<{ status: number, json: any, text: string }> {
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await response.text()
  let json: any = null
  try { json = JSON.parse(text) } catch { /* not JSON */ }
  return { status: response.status, json, text }
}

/** Adds a fake account through the import API, with `proxy` in the import body. */
async function importWithProxy (stack: Stack, email: string, proxy: string): Promise<{ id: string, accountId: string, view: any }> {
  const account = stack.fake.addAccount({ email })
  const answer = await call(stack, 'POST', '/accounts/import', { ...account.tokens, proxy })
  assert.equal(answer.status, 201, answer.text)
  return { id: answer.json.id, accountId: account.accountId, view: answer.json }
}

async function turnOn (stack: Stack, id: string): Promise<string> {
  assert.equal((await call(stack, 'POST', `/accounts/${encodeURIComponent(id)}/select`)).status, 200)
  // A conversation of its own: an earlier one would stay with the account that served it.
  const response = await postResponses(stack, responsesBody('hello', { prompt_cache_key: `conversation-${id}` }))
  assert.equal(response.status, 200)
  return await response.text()
}

test('each account\'s upstream calls, token refreshes and usage probes go through its own proxy (HTTP CONNECT, SOCKS5) and nobody else\'s', async (t) => {
  const httpProxy = await startHttpProxy(t, 'alice', HTTP_PASSWORD)
  const socksProxy = await startSocks5Proxy(t, 'bob', SOCKS_PASSWORD)
  const stack = await startStack(t)
  const viaHttp = await importWithProxy(stack, 'via-http@example.com', httpProxy.url)
  const viaSocks = await stack.addAccount({ email: 'via-socks@example.com' })
  const direct = await stack.addAccount({ email: 'direct@example.com' })
  const patched = await call(stack, 'PATCH', `/accounts/${viaSocks.id}`, { proxy: socksProxy.url })
  assert.equal(patched.status, 200, patched.text)

  // Credentials are masked wherever the account is shown.
  const port = (url: string): string => new URL(url).port
  assert.equal(viaHttp.view.proxy, `http://alice:***@127.0.0.1:${port(httpProxy.url)}`)
  assert.equal(patched.json.proxy, `socks5://bob:***@127.0.0.1:${port(socksProxy.url)}`)

  assert.match(await turnOn(stack, viaHttp.id), /served by via-http@example.com/)
  assert.match(await turnOn(stack, viaSocks.id), /served by via-socks@example.com/)
  assert.match(await turnOn(stack, direct.id), /served by direct@example.com/)

  const refreshesBefore = stack.fake.issuer.refreshCalls
  for (const id of [viaHttp.id, viaSocks.id, direct.id]) assert.equal((await call(stack, 'POST', `/accounts/${id}/refresh`)).status, 200)
  assert.equal(stack.fake.issuer.refreshCalls - refreshesBefore, 3)

  // Usage probes look at resting accounts: rest all three, then probe.
  const resetsAt = Math.floor(Date.now() / 1000) + 3600
  for (const account of [viaHttp, viaSocks, direct]) stack.fake.backend.setExhausted(account.accountId, { resetsAt })
  await (await postResponses(stack)).text()
  assert.deepEqual((await call(stack, 'GET', '/accounts')).json.map((a: any) => a.status), ['cooling', 'cooling', 'cooling'])
  await stack.app.usageProbe.probeOnce()

  const summary = (carried: ReturnType<typeof httpProxy.carried>) => carried.map((r) => `${r.method} ${r.path.split('?')[0]} ${r.accountId ?? '-'}`)
  const throughHttp = summary(httpProxy.carried())
  const throughSocks = summary(socksProxy.carried())
  for (const [through, own] of [[throughHttp, viaHttp.accountId], [throughSocks, viaSocks.accountId]] as const) {
    assert.ok(through.includes(`POST /backend-api/codex/responses ${own}`), `its /v1 call: ${through.join(' | ')}`)
    assert.equal(through.filter((line) => line.startsWith('POST /oauth/token')).length, 1, `its refresh: ${through.join(' | ')}`)
    assert.ok(through.includes(`GET /backend-api/wham/usage ${own}`), `its usage probe: ${through.join(' | ')}`)
    for (const line of through) assert.ok(line.startsWith('POST /oauth/token') || line.endsWith(` ${own}`), `only its own account's calls: ${line}`)
  }
  // The direct account's calls reached the backend without either proxy.
  const directCalls = stack.fake.backend.requests.filter((r) => r.accountId === direct.accountId)
  assert.ok(directCalls.some((r) => r.path.startsWith('/backend-api/codex/responses')))
  assert.ok(directCalls.some((r) => r.path.startsWith('/backend-api/wham/usage')))
  assert.ok(httpProxy.tunnels >= 1 && socksProxy.tunnels >= 1)
  assert.equal(httpProxy.refused + socksProxy.refused, 0, 'the credentials were sent')

  // The password is on disk (it is needed) but in no answer and no log line.
  const stored = await readFile(join(stack.authsDir, TOKENS_FILE), 'utf8')
  assert.ok(stored.includes(HTTP_PASSWORD) && stored.includes(SOCKS_PASSWORD))
  const answers = (await call(stack, 'GET', '/accounts')).text + (await call(stack, 'GET', `/accounts/${viaSocks.id}`)).text + (await call(stack, 'GET', '/audit')).text
  const logs = JSON.stringify(stack.logs)
  for (const secret of [HTTP_PASSWORD, SOCKS_PASSWORD]) {
    assert.ok(!answers.includes(secret), 'no password in an answer')
    assert.ok(!logs.includes(secret), 'no password in the log')
  }

  // One dispatcher per distinct proxy: a second account behind the HTTP proxy shares it; the direct account made none.
  const sharing = await importWithProxy(stack, 'sharing@example.com', httpProxy.url)
  assert.match(await turnOn(stack, sharing.id), /served by sharing@example.com/)
  assert.equal(stack.app.egress.size, 2)
  assert.ok(httpProxy.carried().some((r) => r.accountId === sharing.accountId))

  // Removing the proxy sends the account direct again.
  const cleared = await call(stack, 'PATCH', `/accounts/${viaHttp.id}`, { proxy: null })
  assert.equal(cleared.status, 200)
  assert.equal(cleared.json.proxy, null)
})

test('an unreachable proxy is the account\'s fault with a clear reason, not an upstream outage', async (t) => {
  const socksProxy = await startSocks5Proxy(t, 'bob', SOCKS_PASSWORD)
  const stack = await startStack(t)
  const dead = await importWithProxy(stack, 'dead-proxy@example.com', 'http://user:dead-pass-5555@127.0.0.1:1')
  const badLogin = await importWithProxy(stack, 'bad-login@example.com', socksProxy.url.replace(SOCKS_PASSWORD, 'wrong-pass-7777'))
  const direct = await stack.addAccount({ email: 'direct@example.com' })
  const refreshesBefore = stack.fake.issuer.refreshCalls

  assert.equal((await call(stack, 'POST', `/accounts/${dead.id}/select`)).status, 200)
  const response = await postResponses(stack)
  assert.equal(response.status, 200)
  assert.match(await response.text(), /served by direct@example.com/)
  assert.equal(response.headers.get('x-codex-eq-outage'), null, 'not an outage')
  assert.match(response.headers.get('x-codex-eq-skipped') ?? '', new RegExp(`${dead.id}=account`))
  assert.match(response.headers.get('x-codex-eq-skipped') ?? '', new RegExp(`${badLogin.id}=account`))
  assert.equal(stack.fake.issuer.refreshCalls, refreshesBefore, 'no refresh is tried through a broken proxy')

  const views = (await call(stack, 'GET', '/accounts')).json as any[]
  const deadView = views.find((v) => v.id === dead.id)
  assert.equal(deadView.status, 'disabled')
  assert.match(deadView.reason, /^proxy unreachable: ECONNREFUSED \(127\.0\.0\.1:1\)$/)
  const badView = views.find((v) => v.id === badLogin.id)
  assert.equal(badView.status, 'disabled')
  assert.match(badView.reason, /^proxy unreachable: /)
  assert.ok(socksProxy.refused >= 1)
  assert.equal(views.find((v) => v.id === direct.id).status, 'active', 'the direct account is untouched')
  const everything = JSON.stringify(views) + JSON.stringify(stack.logs)
  assert.ok(!everything.includes('dead-pass-5555') && !everything.includes('wrong-pass-7777'), 'no password in answers or logs')
})

test('a bad proxy setting is refused with a 400 and changes nothing', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'plain@example.com' })
  for (const body of [
    { proxy: 'ftp://user:secret-ftp-pass@example.com:21' },
    { proxy: 'not a url' },
    { proxy: 'http://example.com:8080/some/path' },
    { proxy: 'socks5://:only-password@127.0.0.1:1080' },
    { proxy: 5 },
    { proxy: '' },
    { proxy: 'http://127.0.0.1:8080', other: true },
    {}
  ]) {
    const answer = await call(stack, 'PATCH', `/accounts/${account.id}`, body)
    assert.equal(answer.status, 400, `${JSON.stringify(body)}: ${answer.text}`)
    assert.equal(typeof answer.json?.error?.message, 'string')
    assert.ok(!answer.text.includes('secret-ftp-pass') && !answer.text.includes('only-password'), 'the password is not echoed')
  }
  const fresh = stack.fake.addAccount({ email: 'refused@example.com' })
  const refused = await call(stack, 'POST', '/accounts/import', { ...fresh.tokens, proxy: 'gopher://x' })
  assert.equal(refused.status, 400)
  const views = (await call(stack, 'GET', '/accounts')).json as any[]
  assert.deepEqual(views.map((v) => [v.email, v.proxy]), [['plain@example.com', null]])
  assert.equal((await call(stack, 'PATCH', '/accounts/nobody@example.com', { proxy: null })).status, 404)
  const response = await postResponses(stack)
  assert.equal(response.status, 200)
  await response.text()
  assert.equal(stack.app.egress.size, 0, 'accounts without a proxy never make an egress dispatcher')
})
