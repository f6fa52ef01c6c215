/**
 * Bad input, generated: well over 500 malformed requests across every management and login
 * endpoint (malformed JSON, wrong types, missing and huge fields, odd ids, prototype-pollution keys,
 * wrong content types, huge headers, broken HTTP). Each must get a 4xx with the `{"error":{…}}`
 * body, and none may change the token file, reach the issuer or upstream, or pollute prototypes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { connect } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { ENDPOINTS, pathFor, type Endpoint } from './endpoints.js'

const ADMIN_TOKEN = 'admin-token-0123456789abcdef'

interface Probe {
  what: string
  /** Ignored input (a query string on a read-only endpoint): any answer but a 5xx will do. */
  ignorable?: boolean
  method: string
  path: string
  headers: Record<string, string | string[]>
  body?: string | Buffer
}

interface Answer { status: number, contentType: string | undefined, body: string }

function send (url: string, probe: Probe): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url)
    // A fresh connection each: an answer that closes its connection must not fail the next request.
    const length = probe.body === undefined || 'content-length' in probe.headers ? {} : { 'content-length': String(Buffer.byteLength(probe.body)) }
    const req = request({ host: target.hostname, port: target.port, method: probe.method, path: probe.path, headers: { ...length, ...probe.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('error', reject)
    req.end(probe.body)
  })
}

/** Bytes straight onto a socket, for what an HTTP client library refuses to send. */
function sendRaw (url: string, bytes: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url)
    const socket = connect(Number(target.port), target.hostname)
    let received = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { received += chunk })
    socket.on('error', reject)
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0)
      const split = received.indexOf('\r\n\r\n')
      const head = received.slice(0, split)
      resolve({ status, contentType: /content-type: ([^\r\n]+)/i.exec(head)?.[1], body: received.slice(split + 4) })
    })
    socket.end(bytes)
  })
}

const ODD_IDS = [
  '', '.', '..', '%00', '%2F', '%2e%2e', '%2e%2e%2f%2e%2e', 'a'.repeat(65), 'x'.repeat(4000), '__proto__', 'constructor', 'prototype',
  'hasOwnProperty', 'toString', 'valueOf', '%E2%80%AE', '%F0%9F%98%80', 'id%3Brm', '%3Cscript%3E', '%27%22', '-1', 'null', 'undefined',
  '%5Bobject%20Object%5D', '%', '%zz', '%C0%AE', 'a%20b', 'a/b', 'a?b=1', '0', '9'.repeat(30)
]

const MALFORMED_JSON = [
  '{', '[', '{"a":', 'nul', '{"a":1,}', "{'a':1}", '\u0000', '{"a":"\\u12"}', '{"a":1}{"b":2}', '1e99999', '"', ']',
  '{"a":' + '['.repeat(50_000), '['.repeat(200_000), '{"a":"' + 'x'.repeat(100) // unterminated
]

function jwt (payload: unknown): string {
  const part = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'none' })}.${part(payload)}.sig`
}

/** Well-formed JSON that is still wrong for the import endpoint. */
function badImports (): unknown[] {
  const claims = { 'https://api.openai.com/auth': { chatgpt_account_id: 'acc-x' }, email: 'x@example.com' }
  const fine = { id_token: jwt(claims), access_token: jwt(claims), refresh_token: 'rt_x' }
  const noAccount = jwt({ email: 'no-account@example.com' })
  return [
    '\uFEFF{}',
    null, [], 'str', 1, true, {}, { id_token: 1 }, { id_token: null }, { id_token: [] }, { id_token: {} },
    { id_token: 'x' }, { id_token: 'x', access_token: 'y' }, { ...fine, id_token: '' }, { ...fine, refresh_token: 5 },
    { ...fine, id_token: 'not-a-jwt' }, { ...fine, id_token: 'a.b.c' }, { ...fine, id_token: jwt('not json') }, { ...fine, id_token: noAccount, access_token: noAccount },
    { ...fine, id_token: 'x'.repeat(70_000) }, { ...fine, account_id: 'someone-else' }, { ...fine, account_id: 7 }, { ...fine, account_id: 'a'.repeat(300) },
    { tokens: 'x' }, { tokens: [] }, { tokens: null }, { tokens: { id_token: {} } }, { tokens: { ...fine, id_token: 1 } }, { tokens: {} },
    { ...fine, access_token: 'not-a-jwt', tokens: { id_token: 'a', access_token: 'b', refresh_token: 'c' } },
    { auth_mode: 5, ...fine, id_token: 'bad' }, { OPENAI_API_KEY: { x: 1 } }, { last_refresh: 12 },
    JSON.parse('{"__proto__":{"polluted":true},"id_token":"x"}'), JSON.parse('{"constructor":{"prototype":{"polluted":true}}}'),
    JSON.parse('{"tokens":{"__proto__":{"polluted":true},"id_token":"a","access_token":"b","refresh_token":"c"}}'),
    { ...fine, access_token: noAccount, id_token: jwt('{"__proto__":{"polluted":true},"https://api.openai.com/auth":{"__proto__":{"chatgpt_account_id":"p"}}}') }
  ]
}

function badCallbackUrls (): unknown[] {
  return [
    null, [], 1, {}, { url: 1 }, { url: null }, { url: '' }, { url: 'x'.repeat(9000) }, { url: 'not a url' }, { url: 'javascript:alert(1)' },
    { url: 'file:///etc/passwd' }, { url: 'http://localhost:1455/auth/callback' }, { url: 'http://localhost:1455/auth/callback?code=c&state=unknown' },
    { url: 'http://localhost:1455/auth/callback?error=access_denied&state=unknown' }, { url: 'http://evil.example/auth/callback?code=c&state=s' },
    { url: 'http://localhost:1455/auth/callback?code=c&state=s', extra: true }, JSON.parse('{"__proto__":{"url":"http://x"}}'),
    JSON.parse('{"url":"http://localhost:1455/auth/callback?code=c&state=s","constructor":{"prototype":{"polluted":true}}}')
  ]
}

const WRONG_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/json; charset=utf-16', 'application/jsonx', 'text/json', 'application/octet-stream']

function probes (ids: { account: string }): Probe[] {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }
  const json = { ...auth, 'content-type': 'application/json' }
  const list: Probe[] = []
  const add = (what: string, endpoint: Endpoint, id: string, headers: Record<string, string | string[]>, body?: string | Buffer): void => {
    list.push({ what: `${what}: ${endpoint.method} ${endpoint.path}`, method: endpoint.method, path: pathFor(endpoint, '\u0000').replace('%00', id), headers, body })
  }
  for (const endpoint of ENDPOINTS) {
    const id = endpoint.path.startsWith('/accounts/:id') ? ids.account : 'no-such-login'
    if (endpoint.path.includes(':id')) {
      for (const odd of ODD_IDS) add(`odd id ${odd.slice(0, 20)}`, endpoint, odd, auth)
    }
    if (endpoint.method === 'GET') {
      add('pollution query', endpoint, id, auth)
      list[list.length - 1]!.path += '?__proto__[polluted]=1&constructor[prototype][polluted]=1&__proto__.polluted=1'
      list[list.length - 1]!.ignorable = true
      add('huge header', endpoint, id, { ...auth, 'x-filler': 'x'.repeat(20_000) })
      add('huge authorization', endpoint, id, { authorization: `Bearer ${'x'.repeat(15_000)}` })
      continue
    }
    // Every state-changing endpoint, with the real account id where it takes one: the handler must not run.
    for (const text of MALFORMED_JSON) add('malformed JSON', endpoint, id, json, text)
    for (const type of WRONG_TYPES) add(`content-type ${type}`, endpoint, id, { ...auth, 'content-type': type }, '{"url":"x","id_token":"x"}')
    if (endpoint.json) add('empty JSON body with a length', endpoint, id, { ...json, 'content-length': '0' }, '')
    add('two content types', endpoint, id, { ...auth, 'content-type': ['text/plain', 'application/json'] }, '{}')
    add('gzip that is not', endpoint, id, { ...json, 'content-encoding': 'gzip' }, 'not gzip at all')
    add('unknown encoding', endpoint, id, { ...json, 'content-encoding': 'x-unknown' }, '{}')
    add('body over the limit', endpoint, id, json, JSON.stringify({ id_token: 'x'.repeat(600 * 1024) }))
    add('huge header', endpoint, id, { ...json, 'x-filler': 'x'.repeat(20_000) }, '{}')
    add('many headers', endpoint, id, { ...json, ...Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`x-h${i}`, 'v'])) }, '{"x":')
    add('pollution query and body', endpoint, id, json, '{"__proto__":{"polluted":true}')
    list[list.length - 1]!.path += '?__proto__[polluted]=1'
  }
  const importEndpoint = ENDPOINTS.find((endpoint) => endpoint.path === '/accounts/import')!
  for (const body of badImports()) add('bad import', importEndpoint, '', json, typeof body === 'string' ? body : JSON.stringify(body))
  const callback = ENDPOINTS.find((endpoint) => endpoint.path === '/auth/callback-url')!
  for (const body of badCallbackUrls()) add('bad callback url', callback, '', json, JSON.stringify(body))
  for (const method of ['PUT', 'PATCH', 'TRACE', 'PROPFIND']) {
    list.push({ what: `method ${method}`, method, path: `/accounts/${ids.account}`, headers: json, body: '{}' })
  }
  return list
}

/** Requests no HTTP client library would send. */
function rawProbes (account: string): Array<{ what: string, bytes: string, ignorable?: boolean }> {
  const auth = `Authorization: Bearer ${ADMIN_TOKEN}\r\n`
  return [
    { what: 'length larger than the body', bytes: `POST /accounts/import HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{"a":1,"b":2}` },
    { what: 'bad chunk', bytes: `POST /accounts/${account}/refresh HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n` },
    { what: 'length and chunked', bytes: `POST /accounts/${account}/enable HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n` },
    { what: 'bad request line', bytes: 'GET /accounts HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n' },
    { what: 'no host', bytes: `GET /accounts HTTP/1.1\r\n${auth}Connection: close\r\n\r\n` },
    { what: 'header without colon', bytes: `GET /accounts HTTP/1.1\r\nHost: x\r\n${auth}broken header\r\nConnection: close\r\n\r\n` },
    { what: 'control character in the path', bytes: `GET /accounts/\u0001 HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n` },
    // Answered as this server's own /accounts (it is no proxy): fine with the admin token.
    { what: 'absolute URL elsewhere', bytes: `GET http://evil.example/accounts HTTP/1.1\r\nHost: evil.example\r\n${auth}Connection: close\r\n\r\n`, ignorable: true },
    { what: 'request smuggling attempt', bytes: `POST /accounts/import HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 0\r\nContent-Length: 40\r\nConnection: close\r\n\r\n` }
  ]
}

async function tokenFile (stack: Stack): Promise<string> {
  return await readFile(join(stack.authsDir, TOKENS_FILE), 'utf8')
}

test('500+ malformed requests to the management and login endpoints: all 4xx with an error body, nothing changed, server alive', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN_TOKEN } })
  const account = await stack.addAccount({ email: 'kept@example.com' })
  await stack.addAccount({ email: 'second@example.com' })
  const before = { file: await tokenFile(stack), refreshes: stack.fake.issuer.refreshCalls, upstream: stack.fake.backend.requests.length, authorizations: stack.fake.issuer.authorizeRequests.length }

  const generated = probes({ account: account.id })
  const raw = rawProbes(account.id)
  assert.ok(generated.length + raw.length >= 500, `${generated.length + raw.length} requests`)
  const failures: string[] = []
  const check = (what: string, answer: Answer, shaped: boolean, ignorable = false): void => {
    if (ignorable && answer.status < 500) return
    if (answer.status < 400 || answer.status >= 500) {
      failures.push(`${what} → ${answer.status} ${answer.body.slice(0, 200)}`)
      return
    }
    if (!shaped) return
    let error: { type?: unknown, message?: unknown } | undefined
    try {
      error = (JSON.parse(answer.body) as { error?: typeof error }).error
    } catch {}
    if (typeof error?.type !== 'string' || typeof error.message !== 'string') failures.push(`${what} → ${answer.status} without an error body: ${answer.body.slice(0, 200)}`)
  }
  const statuses = new Map<number, number>()
  for (const probe of generated) {
    let answer: Answer
    try {
      answer = await send(stack.url, probe)
    } catch (err) {
      failures.push(`${probe.what} → no answer (${(err as Error).message})`)
      continue
    }
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
    check(probe.what, answer, true, probe.ignorable)
  }
  for (const probe of raw) {
    const answer = await sendRaw(stack.url, probe.bytes)
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
    // Node itself answers a missing Host with an empty 400; everything else carries the error body.
    check(`raw: ${probe.what}`, answer, answer.body.replace(/^0\r\n\r\n$/, '') !== '', probe.ignorable)
    if (answer.status === 0) failures.push(`raw: ${probe.what} → no answer at all`)
  }
  t.diagnostic(`${generated.length + raw.length} malformed requests; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`)
  assert.deepEqual(failures, [])

  assert.equal(await tokenFile(stack), before.file, 'the token file is byte for byte the same')
  assert.equal(stack.fake.issuer.refreshCalls, before.refreshes, 'no refresh token was used')
  assert.equal(stack.fake.issuer.authorizeRequests.length, before.authorizations)
  assert.equal(stack.fake.backend.requests.length, before.upstream)
  assert.equal(stack.logs.filter((line) => line.msg === 'request failed').length, 0, 'no request failed inside')
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched')
  assert.equal(Object.keys(Object.prototype).length, 0)

  const health = await fetch(`${stack.url}/healthz`)
  assert.deepEqual(await health.json(), { status: 'ok', accounts: 2, usable: 2 })
  const accounts = await (await fetch(`${stack.url}/accounts`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json() as Array<{ email: string }>
  assert.deepEqual(accounts.map((view) => view.email), ['kept@example.com', 'second@example.com'])
  const turn = await postResponses(stack, responsesBody('still fine'))
  assert.equal(turn.status, 200)
  assert.match(await turn.text(), /still fine/)
})

test('/v1 bodies over the limit get 413, with or without a length, and are not forwarded', async (t) => {
  const stack = await startStack(t, { settings: { bodyLimit: '64kib' } })
  await stack.addAccount()
  const big = JSON.stringify(responsesBody('x'.repeat(100 * 1024)))
  const declared = await postResponses(stack, responsesBody('x'.repeat(100 * 1024)))
  assert.equal(declared.status, 413)
  assert.equal((await declared.json() as { error: { type: string } }).error.type, 'body_too_large')
  const chunked = await fetch(`${stack.url}/v1/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({ start (controller) { controller.enqueue(new TextEncoder().encode(big)); controller.close() } }),
    duplex: 'half'
  } as RequestInit)
  assert.equal(chunked.status, 413)
  await chunked.text()
  assert.equal(stack.fake.backend.requests.length, 0)
  const fine = await postResponses(stack)
  assert.equal(fine.status, 200)
  await fine.text()
})
