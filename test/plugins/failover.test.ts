import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'

type View = Record<string, any>

const views = async (stack: Stack): Promise<View[]> => await (await fetch(`${stack.url}/accounts`)).json() as View[]
const upstreamCalls = (stack: Stack, from = 0): Array<[string | undefined, number]> => stack.fake.backend.requests.slice(from).map((r) => [r.accountId, r.status])

async function turn (stack: Stack, body = responsesBody()): Promise<{ response: Response, text: string }> {
  const response = await postResponses(stack, body)
  return { response, text: await response.text() }
}

test('a 5xx is retried once on the same account, unseen by the client', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount({ email: 'first@example.com' })
  await stack.addAccount()
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 500 })
  const { response, text } = await turn(stack)
  assert.equal(response.status, 200)
  assert.match(text, /served by first@example.com/)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')
  assert.deepEqual(upstreamCalls(stack), [[first.accountId, 500], [first.accountId, 200]])
  assert.equal(stack.fake.issuer.refreshCalls, 0, 'one retry comes before any refresh')
  assert.equal((await views(stack))[0]!.status, 'active')
})

test('still failing after a retry and a refresh: the account is disabled for the configured cooldown and the next one serves', async (t) => {
  const stack = await startStack(t, { settings: { cooldown: '2h' } })
  const first = await stack.addAccount()
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 502 }, { kind: 'status', status: 502 }, { kind: 'status', status: 502 })
  const before = Date.now()
  const { response, text } = await turn(stack)
  assert.equal(response.status, 200)
  assert.match(text, /served by second@example.com/)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '4')
  assert.deepEqual(upstreamCalls(stack), [[first.accountId, 502], [first.accountId, 502], [first.accountId, 502], [second.accountId, 200]])
  assert.equal(stack.fake.issuer.refreshCalls, 1, 'refreshed between the second and third try')
  const [a, b] = await views(stack) as [View, View]
  assert.equal(a.status, 'disabled')
  assert.match(a.reason, /HTTP 502/)
  const until = Date.parse(a.disabled_until)
  assert.ok(until >= before + 2 * 3_600_000 && until <= Date.now() + 2 * 3_600_000, `disabled for 2 h: ${a.disabled_until}`)
  assert.equal(b.current, true)
  const calls = stack.fake.backend.requests.length
  await turn(stack, responsesBody('again', { prompt_cache_key: 'other' }))
  assert.deepEqual(upstreamCalls(stack, calls), [[second.accountId, 200]], 'the disabled account is left alone')
})

test('an upstream that sends no headers within the timeout takes the ladder', { timeout: 30_000 }, async (t) => {
  const stack = await startStack(t, { settings: { upstreamHeadersTimeout: '1s' } })
  const first = await stack.addAccount()
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'hang' }, { kind: 'hang' }, { kind: 'hang' })
  const { response, text } = await turn(stack)
  assert.equal(response.status, 200)
  assert.match(text, /served by second@example.com/)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '4')
  const [a, b] = await views(stack) as [View, View]
  assert.equal(a.status, 'disabled')
  assert.match(a.reason, /timed out/)
  assert.deepEqual([b.id, b.current], [second.id, true])
})

test('a 429 without a reset time takes the ladder instead of a cooldown', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  await stack.addAccount()
  const limit = { kind: 'usage_limit', via: 'none' } as const
  stack.fake.backend.script(first.accountId, limit, limit, limit)
  const { response } = await turn(stack)
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '4')
  const a = (await views(stack))[0]!
  assert.equal(a.status, 'disabled')
  assert.equal(a.disabled_source, 'cooldown')
})

test('once the stream has begun, a broken upstream is passed on: no failover, the account keeps its place', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  await stack.addAccount()
  stack.fake.backend.script(first.accountId, { kind: 'drop', afterEvents: 2 })
  const received = await new Promise<{ text: string, error: boolean }>((resolve, reject) => {
    const payload = JSON.stringify(responsesBody())
    const req = httpRequest(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ text, error: false }))
      res.on('error', () => resolve({ text, error: true }))
    })
    req.on('error', reject)
    req.end(payload)
  })
  assert.equal(received.error, true, 'the client sees the stream break')
  assert.match(received.text, /response\.created/)
  assert.doesNotMatch(received.text, /response\.completed/)
  assert.deepEqual(upstreamCalls(stack), [[first.accountId, 200]], 'no second request once bytes went out')
  const a = (await views(stack))[0]!
  assert.match(a.last_error, /stream broke/)
  assert.equal(a.status, 'active')
  assert.equal(a.current, true)
})

test('a 20 MiB body passes under the default limit, byte for byte, on every attempt', { timeout: 60_000 }, async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 503 })
  const body = responsesBody('x'.repeat(20 * 1024 * 1024))
  const { response } = await turn(stack, body)
  assert.equal(response.status, 200)
  const sent = Buffer.from(JSON.stringify(body))
  assert.equal(stack.fake.backend.requests.length, 2)
  for (const seen of stack.fake.backend.requests) assert.ok(seen.rawBody.equals(sent), 'the same bytes each time')
})
