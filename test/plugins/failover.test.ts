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

test('a 5xx on one account is the upstream\'s fault: a brief rest, no refresh, and the next account serves unseen', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 500 })
  const before = Date.now()
  const { response, text } = await turn(stack)
  assert.equal(response.status, 200)
  assert.match(text, /served by second@example.com/)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')
  assert.equal(response.headers.get('x-codex-eq-skipped'), `${first.id}=upstream`)
  assert.deepEqual(upstreamCalls(stack), [[first.accountId, 500], [second.accountId, 200]])
  assert.equal(stack.fake.issuer.refreshCalls, 0, 'an upstream failure never spends a refresh token')
  const a = (await views(stack))[0]!
  assert.equal(a.status, 'resting')
  assert.equal(a.disabled_source, 'upstream')
  const until = Date.parse(a.disabled_until)
  assert.ok(until >= before + 30_000 && until <= Date.now() + 30_000, `rests 30 s, not the cooldown: ${a.disabled_until}`)
})

test('still failing after a retry and a refresh: the account is disabled for the configured cooldown and the next one serves', async (t) => {
  const stack = await startStack(t, { settings: { cooldown: '2h' } })
  const first = await stack.addAccount()
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 403 }, { kind: 'status', status: 403 }, { kind: 'status', status: 403 })
  const before = Date.now()
  const { response, text } = await turn(stack)
  assert.equal(response.status, 200)
  assert.match(text, /served by second@example.com/)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '4')
  assert.deepEqual(upstreamCalls(stack), [[first.accountId, 403], [first.accountId, 403], [first.accountId, 403], [second.accountId, 200]])
  assert.equal(stack.fake.issuer.refreshCalls, 1, 'refreshed between the second and third try')
  const [a, b] = await views(stack) as [View, View]
  assert.equal(a.status, 'disabled')
  assert.match(a.reason, /HTTP 403/)
  const until = Date.parse(a.disabled_until)
  assert.ok(until >= before + 2 * 3_600_000 && until <= Date.now() + 2 * 3_600_000, `disabled for 2 h: ${a.disabled_until}`)
  assert.equal(b.current, true)
  const calls = stack.fake.backend.requests.length
  await turn(stack, responsesBody('again', { prompt_cache_key: 'other' }))
  assert.deepEqual(upstreamCalls(stack, calls), [[second.accountId, 200]], 'the disabled account is left alone')
})

test('an upstream that sends no headers within the timeout costs one timeout, then the next account serves', { timeout: 30_000 }, async (t) => {
  const stack = await startStack(t, { settings: { upstreamHeadersTimeout: '1s' } })
  const first = await stack.addAccount()
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'hang' }, { kind: 'hang' }, { kind: 'hang' })
  const started = Date.now()
  const { response, text } = await turn(stack)
  assert.equal(response.status, 200)
  assert.match(text, /served by second@example.com/)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')
  assert.ok(Date.now() - started < 2_900, `one headers timeout, not three: ${Date.now() - started} ms`)
  const [a, b] = await views(stack) as [View, View]
  assert.equal(a.status, 'resting')
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
  stack.fake.backend.script(first.accountId, { kind: 'drop', afterEvents: 4 }) // after the reasoning item: content began
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
  await stack.addAccount()
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 503 })
  const body = responsesBody('x'.repeat(20 * 1024 * 1024))
  const { response } = await turn(stack, body)
  assert.equal(response.status, 200)
  const sent = Buffer.from(JSON.stringify(body))
  assert.equal(stack.fake.backend.requests.length, 2)
  for (const seen of stack.fake.backend.requests) assert.ok(seen.rawBody.equals(sent), 'the same bytes each time')
})

test('an upstream that drops the stream before any content fails over unseen', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'drop', afterEvents: 2 }) // response.created and in_progress only
  const { response, text } = await turn(stack)
  assert.equal(response.status, 200)
  assert.match(text, /served by second@example.com/)
  assert.equal(text.match(/event: response\.created/g)?.length, 1, 'the first account\'s held events never reach the client')
  assert.equal(response.headers.get('x-codex-eq-account'), second.id)
  assert.deepEqual(upstreamCalls(stack).map(([account]) => account), [first.accountId, second.accountId])
})
