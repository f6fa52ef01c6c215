import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { startStack } from '../helpers/stack.js'

const ADMIN_TOKEN = 'admin-token-0123456789'
const API_KEY = 'api-key-0123456789abcdef'

test('GET /info tells the dashboard how Codex reaches this server, behind the admin token, never with a secret', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN_TOKEN, apiKey: [API_KEY] } })
  const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string }

  const refused = await stack.app.inject({ method: 'GET', url: '/info', headers: { host: 'pool.lan:1456' } })
  assert.equal(refused.statusCode, 401)
  assert.equal(refused.json().error.type, 'unauthorized')

  const answer = await stack.app.inject({ method: 'GET', url: '/info', headers: { host: 'pool.lan:1456', authorization: `Bearer ${ADMIN_TOKEN}` } })
  assert.equal(answer.statusCode, 200)
  assert.deepEqual(answer.json(), {
    version,
    base_url: 'http://pool.lan:1456/v1',
    codex_base_url: 'http://pool.lan:1456/backend-api/codex',
    chatgpt_base_url: 'http://pool.lan:1456/backend-api',
    websocket: true,
    api_keys_required: true,
    admin_token_required: true
  })
  assert.equal(answer.body.includes(ADMIN_TOKEN) || answer.body.includes(API_KEY), false)
  assert.equal(answer.headers['x-content-type-options'], 'nosniff')
})

test('GET /info without admin token or API keys says so', async (t) => {
  const stack = await startStack(t)
  const answer = await fetch(`${stack.url}/info`)
  assert.equal(answer.status, 200)
  const info = await answer.json() as Record<string, unknown>
  assert.equal(info.base_url, `${stack.url}/v1`)
  assert.equal(info.api_keys_required, false)
  assert.equal(info.admin_token_required, false)
  assert.equal(info.websocket, true)
  const off = await startStack(t, { settings: { websocket: 'off' } })
  assert.equal((await (await fetch(`${off.url}/info`)).json() as Record<string, unknown>).websocket, false)
})

test('the dashboard page and its scripts carry a strict Content-Security-Policy; the proxy answers do not', async (t) => {
  const stack = await startStack(t)
  for (const path of ['/', '/app.js', '/style.css']) {
    const answer = await fetch(`${stack.url}${path}`)
    assert.equal(answer.status, 200, path)
    assert.equal(answer.headers.get('content-security-policy'),
      "default-src 'self';script-src 'self';style-src 'self';img-src 'self';connect-src 'self';form-action 'self';base-uri 'none';object-src 'none';frame-ancestors 'none'", path)
    assert.equal(answer.headers.get('x-content-type-options'), 'nosniff', path)
    assert.equal(answer.headers.get('x-frame-options'), 'DENY', path)
    assert.equal(answer.headers.get('strict-transport-security'), null, 'plain HTTP service: no HSTS')
    await answer.arrayBuffer()
  }
  const proxied = await fetch(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(proxied.headers.get('content-security-policy'), null)
  await proxied.arrayBuffer()
})
