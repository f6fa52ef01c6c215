/**
 * No web page of another site can drive the pool. The API uses no cookies (the admin token travels
 * in an Authorization header, which a page can only add to requests the browser first asks the
 * server about), so what is left to refuse is what a page can send without asking: form posts
 * (text/plain, urlencoded, multipart), no-cors fetches and navigations. With an admin token they
 * lack it; without one, the JSON endpoints refuse non-JSON bodies, every endpoint refuses
 * requests the browser marks as coming from another site (Sec-Fetch-Site, or Origin), and only
 * loopback host names are answered (a DNS-rebinding page is same-origin to the browser).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { closeChromium, launchChromium } from '../support/chromium.js'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { ENDPOINTS, pathFor } from './endpoints.js'

const ADMIN_TOKEN = 'admin-token-0123456789abcdef'
const EVIL = 'http://evil.example'

/** What a page elsewhere can send without a preflight. */
const FORMS: Array<{ type: string, body: string }> = [
  { type: 'text/plain', body: '{"id_token":"x","access_token":"y","refresh_token":"z","url":"http://localhost:1455/auth/callback?code=c&state=s"}' },
  { type: 'application/x-www-form-urlencoded', body: 'id_token=x&access_token=y&refresh_token=z' },
  { type: 'multipart/form-data; boundary=XyZ', body: '--XyZ\r\nContent-Disposition: form-data; name="id_token"\r\n\r\nx\r\n--XyZ--\r\n' }
]

interface Snapshot { file: string, refreshes: number, upstream: number, accounts: string }

async function snapshot (stack: Stack): Promise<Snapshot> {
  const headers: Record<string, string> = stack.config.adminToken === null ? {} : { authorization: `Bearer ${stack.config.adminToken}` }
  const accounts = await (await fetch(`${stack.url}/accounts`, { headers })).json() as Array<Record<string, unknown>>
  return {
    file: await readFile(join(stack.authsDir, TOKENS_FILE), 'utf8'),
    refreshes: stack.fake.issuer.refreshCalls,
    upstream: stack.fake.backend.requests.length,
    accounts: JSON.stringify(accounts.map(({ id, status, current, last_error: lastError }) => ({ id, status, current, lastError })))
  }
}

const sendable = ENDPOINTS.filter((endpoint) => endpoint.changes && endpoint.method === 'POST')

test('with an admin token, cross-site form posts to the state-changing endpoints change nothing', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN_TOKEN } })
  const account = await stack.addAccount()
  await stack.addAccount()
  const before = await snapshot(stack)
  for (const endpoint of sendable) {
    for (const form of FORMS) {
      const response = await fetch(`${stack.url}${pathFor(endpoint, account.id)}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': form.type, origin: EVIL, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' },
        body: form.body
      })
      assert.ok([401, 403, 415].includes(response.status), `${endpoint.path} as ${form.type}: ${response.status}`)
      await response.text()
    }
  }
  assert.deepEqual(await snapshot(stack), before)
})

test('without an admin token, the JSON endpoints refuse non-JSON bodies and all refuse requests marked as from another site', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  await stack.addAccount()
  const before = await snapshot(stack)
  for (const endpoint of sendable) {
    const path = pathFor(endpoint, account.id)
    // A plain form post, from a browser that sends neither Origin nor Sec-Fetch-Site.
    for (const form of FORMS) {
      const response = await fetch(`${stack.url}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': form.type }, body: form.body })
      const body = await response.json() as { error: { type: string, message: string } }
      assert.equal(response.status, 415, `${endpoint.path} as ${form.type}`)
      assert.equal(body.error.type, 'unsupported_media_type')
    }
    // A no-cors fetch without a body, or one marked by an older browser with its Origin only.
    const marked: Array<Record<string, string>> = [{ 'sec-fetch-site': 'cross-site', origin: EVIL }, { 'sec-fetch-site': 'same-site' }, { origin: EVIL }, { origin: 'null' }]
    for (const headers of marked) {
      const response = await fetch(`${stack.url}${path}`, { method: 'POST', redirect: 'manual', headers })
      const body = await response.json() as { error: { type: string } }
      assert.equal(response.status, 403, `${endpoint.path} with ${JSON.stringify(headers)}`)
      assert.equal(body.error.type, 'cross_site_request')
    }
  }
  for (const [method, path] of [['GET', '/auth/login'], ['GET', '/accounts'], ['DELETE', `/accounts/${account.id}`]] as const) {
    const response = await fetch(`${stack.url}${path}`, { method, redirect: 'manual', headers: { 'sec-fetch-site': 'cross-site', origin: EVIL } })
    assert.equal(response.status, 403, `${method} ${path} from another site`)
    await response.text()
  }
  const v1 = await fetch(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'text/plain', origin: EVIL, 'sec-fetch-site': 'cross-site' }, body: JSON.stringify(responsesBody('spend their quota')) })
  assert.equal(v1.status, 403, 'no other site spends the quota through /v1 either')
  await v1.text()
  assert.deepEqual(await snapshot(stack), before, 'nothing changed')

  // The dashboard itself (same origin) and clients that are not browsers still work.
  const own = new URL(stack.url).host
  const sameOrigin = await fetch(`${stack.url}/accounts/${account.id}/refresh`, { method: 'POST', headers: { 'sec-fetch-site': 'same-origin', origin: `http://${own}` } })
  assert.equal(sameOrigin.status, 200)
  const olderBrowser = await fetch(`${stack.url}/accounts/${account.id}/enable`, { method: 'POST', headers: { origin: `http://${own}` } })
  assert.equal(olderBrowser.status, 200)
  const typed = await fetch(`${stack.url}/auth/login`, { redirect: 'manual', headers: { 'sec-fetch-site': 'none' } })
  assert.equal(typed.status, 302, 'a login opened from the address bar')
  const cli = await fetch(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(responsesBody()) })
  assert.equal(cli.status, 200)
  await cli.text()
})

test('a real browser on another site cannot drive the pool (headless Chromium)', async (t) => {
  // Launched first so that it is closed first (node:test runs clean-ups in the order they were
  // added): the servers' own close waits for the connections the browser still holds.
  const browser = await launchChromium()
  t.after(() => closeChromium(browser))
  const stack = await startStack(t)
  const account = await stack.addAccount()
  await stack.addAccount()
  const before = await snapshot(stack)

  // The attacker's page, on another site: localhost is not the same site as 127.0.0.1.
  const targets = sendable.map((endpoint) => `${stack.url}${pathFor(endpoint, account.id)}`).concat(`${stack.url}/v1/responses`)
  const page = `<!doctype html><body><script>
    const targets = ${JSON.stringify(targets)};
    let n = 0;
    for (const url of targets) {
      for (const enctype of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']) {
        const frame = document.createElement('iframe'); frame.name = 'f' + (n++); document.body.append(frame);
        const form = document.createElement('form'); form.method = 'POST'; form.action = url; form.enctype = enctype; form.target = frame.name;
        const input = document.createElement('input'); input.name = '{"id_token":"x","pad":"'; input.value = '"}'; form.append(input);
        document.body.append(form); form.submit();
      }
      fetch(url, { method: 'POST', mode: 'no-cors' }).catch(() => {});
      fetch(url, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"model":"x","stream":true,"store":false}' }).catch(() => {});
    }
    fetch(${JSON.stringify(`${stack.url}/accounts/${account.id}`)}, { method: 'DELETE' }).catch(() => {});
    fetch(${JSON.stringify(`${stack.url}/accounts/import`)}, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).catch(() => {});
  </script></body>`
  const attacker = createServer((_request, response) => { response.writeHead(200, { 'content-type': 'text/html' }); response.end(page) })
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => attacker.close(() => resolve())))
  const attackerUrl = `http://localhost:${(attacker.address() as AddressInfo).port}/`

  const tab = await browser.newPage()
  // Counted where they arrive: the browser does not report answers to frames that refuse framing.
  const answered: Array<{ method: string, url: string, status: number }> = []
  stack.app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    response.once('finish', () => answered.push({ method: request.method ?? '', url: request.url ?? '', status: response.statusCode }))
  })
  const expected = targets.length * 5
  await tab.goto(attackerUrl)
  const deadline = Date.now() + 20_000
  while (answered.filter((entry) => entry.method === 'POST').length < expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))

  const posts = answered.filter((entry) => entry.method === 'POST')
  assert.ok(posts.length >= expected, `the browser sent every attack (${posts.length} of ${expected} answered)`)
  for (const entry of posts) assert.ok([403, 415].includes(entry.status), `${entry.method} ${entry.url}: ${entry.status}`)
  assert.equal(answered.filter((entry) => entry.method === 'DELETE').length, 0, 'a cross-site DELETE never leaves the browser (no CORS)')
  assert.deepEqual(await snapshot(stack), before, 'nothing changed')
})

test('without an admin token, a page that points its own name at 127.0.0.1 (DNS rebinding) gets nothing', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  const before = await snapshot(stack)
  const port = new URL(stack.url).port
  // To the browser this is same-origin: it marks nothing, only the Host header names the other site.
  const rebound = { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, 'sec-fetch-site': 'same-origin' }
  const tries: Array<[string, string, string?]> = [
    ['GET', '/accounts'], ['GET', '/info'], ['GET', '/'], ['GET', '/healthz'], ['GET', '/metrics'], ['GET', '/auth/login'],
    ['POST', `/accounts/${account.id}/refresh`], ['DELETE', `/accounts/${account.id}`], ['POST', '/auth/device'],
    ['POST', '/v1/responses', JSON.stringify(responsesBody('spend'))]
  ]
  for (const [method, path, body] of tries) {
    const answer = await new Promise<{ status: number, text: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { ...rebound, ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }) } }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { text += chunk })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      })
      req.on('error', reject)
      req.end(body)
    })
    assert.equal(answer.status, 403, `${method} ${path}`)
    assert.equal((JSON.parse(answer.text) as { error: { type: string } }).error.type, 'unknown_host')
    assert.doesNotMatch(answer.text, /@example\.com/, 'no account data')
  }
  assert.deepEqual(await snapshot(stack), before)
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, 'localhost']) {
    const answer = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/healthz', headers: { host } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
      req.on('error', reject)
      req.end()
    })
    assert.equal(answer, 200, host)
  }
})

test('with an admin token, other host names are served (a reverse proxy in front), still only with the token', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN_TOKEN } })
  await stack.addAccount()
  const viaProxy = (authorization?: string): Promise<number> => new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: new URL(stack.url).port, path: '/accounts', headers: { host: 'codex.example.com', ...(authorization === undefined ? {} : { authorization }) } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end()
  })
  assert.equal(await viaProxy(`Bearer ${ADMIN_TOKEN}`), 200)
  assert.equal(await viaProxy(), 401)
})
