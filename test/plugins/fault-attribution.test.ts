import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { openWs } from '../helpers/ws-client.js'

type View = Record<string, any>

const views = async (stack: Stack): Promise<View[]> => await (await fetch(`${stack.url}/accounts`)).json() as View[]
const delay = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function turn (stack: Stack, body: Record<string, unknown> = responsesBody(), headers: Record<string, string> = {}): Promise<{ response: Response, text: string }> {
  const response = await postResponses(stack, body, headers)
  return { response, text: await response.text() }
}

test('an upstream outage rests nobody: its 5xx goes to the client, never usage_limit_reached, and serving resumes by itself', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  await stack.addAccount()
  await stack.addAccount()
  stack.fake.backend.setOutage({ status: 502 })
  const { response, text } = await turn(stack)
  assert.equal(response.status, 502, 'the upstream\'s own status: Codex retries it')
  assert.match(text, /Bad Gateway/)
  assert.equal(response.headers.get('x-codex-eq-outage'), 'http_502')
  assert.equal(stack.fake.backend.requests.length, 2, 'two accounts failing alike is enough: the third is not walked')
  assert.deepEqual((await views(stack)).map((v) => v.status), ['active', 'active', 'active'], 'nobody rests for an outage')

  // While it lasts, each request is one probe (or the outage's answer at once), never a usage limit.
  const during = await turn(stack)
  assert.equal(during.response.status, 502)
  assert.equal(stack.fake.backend.requests.length, 3)

  stack.fake.backend.setOutage(null)
  const after = await turn(stack)
  assert.equal(after.response.status, 200, 'back without anyone pressing "enable"')
  assert.match(after.text, /response\.completed/)
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  assert.match(metrics, /codex_eq_upstream_outages_total 1/)
})

test('a 130 ms burst of 502s on three accounts costs no account anything', async (t) => {
  const stack = await startStack(t)
  for (let i = 0; i < 3; i++) await stack.addAccount()
  stack.fake.backend.setOutage({ status: 502, forMs: 130 })
  const first = await turn(stack)
  assert.equal(first.response.status, 502)
  await delay(150)
  const second = await turn(stack)
  assert.equal(second.response.status, 200)
  for (const view of await views(stack)) {
    assert.equal(view.status, 'active')
    assert.equal(view.disabled_until, null)
  }
})

test('a hung upstream costs at most two headers timeouts per request, then the outage answers at once', { timeout: 30_000 }, async (t) => {
  const stack = await startStack(t, { settings: { upstreamHeadersTimeout: '700ms' } })
  for (let i = 0; i < 3; i++) await stack.addAccount()
  stack.fake.backend.setOutage({ mode: 'hang' })
  const started = Date.now()
  const { response } = await turn(stack)
  const took = Date.now() - started
  assert.equal(response.status, 504)
  assert.equal(response.headers.get('x-codex-eq-outage'), 'timeout')
  assert.ok(took >= 1400 && took < 2100, `two timeouts, not 3 x 3: ${took} ms`)
  assert.deepEqual((await views(stack)).map((v) => v.status), ['active', 'active', 'active'])
})

test('refused connections: an outage too, answered 502', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  await stack.addAccount()
  stack.fake.backend.setOutage({ mode: 'reset' })
  const { response, text } = await turn(stack)
  assert.equal(response.status, 502)
  assert.match(text, /upstream_unavailable/)
  assert.equal(response.headers.get('x-codex-eq-outage'), 'unreachable')
})

test('the issuer down while tokens are refused: accounts wait for it (a retryable 503), never disabled or "needs login", and come back by themselves', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  const b = await stack.addAccount()
  for (const account of [a, b]) {
    stack.fake.issuer.failRefresh(account.accountId, 'down')
    stack.fake.backend.revokeAccessTokens(account.accountId)
  }
  const { response, text } = await turn(stack)
  assert.equal(response.status, 503)
  assert.match(text, /upstream_unavailable/)
  assert.doesNotMatch(text, /usage_limit_reached/)
  for (const view of await views(stack)) {
    assert.equal(view.status, 'resting')
    assert.equal(view.disabled_source, 'issuer')
    assert.ok(Date.parse(view.disabled_until) - Date.now() <= 30_000)
  }
  for (const account of [a, b]) stack.fake.issuer.failRefresh(account.accountId, null)
  const back = await turn(stack)
  assert.equal(back.response.status, 200, 'one request probes a resting account: its refresh goes through')
  assert.equal((await views(stack)).filter((v) => v.status === 'active').length, 1)
})

test('a model-scoped limit rests the account for that model only, and the pool\'s answer names the model\'s limit', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  const resetsAt = Math.floor(Date.now() / 1000) + 1200
  const spark = { family: 'codex_bengalfox', limitName: 'GPT-5.3-Codex-Spark', resetsAt }
  stack.fake.backend.setModelLimit(a.accountId, 'gpt-5.3-codex-spark', spark)
  const moved = await turn(stack, responsesBody('spark please', { model: 'gpt-5.3-codex-spark' }))
  assert.match(moved.text, /served by b@example.com/)
  assert.equal(moved.response.headers.get('x-codex-eq-skipped'), `${a.id}=model_quota`)
  const [viewA] = await views(stack) as [View]
  assert.equal(viewA.status, 'active', 'the account itself does not rest')
  assert.deepEqual(viewA.limits.map((l: View) => [l.family, l.name, l.models, Date.parse(l.until) / 1000]), [['codex_bengalfox', 'GPT-5.3-Codex-Spark', ['gpt-5.3-codex-spark'], resetsAt]])

  stack.fake.backend.setModelLimit(b.accountId, 'gpt-5.3-codex-spark', { ...spark, resetsAt: resetsAt + 600 })
  const out = await turn(stack, responsesBody('spark again', { model: 'gpt-5.3-codex-spark', prompt_cache_key: 'other' }))
  assert.equal(out.response.status, 429)
  const body = JSON.parse(out.text) as { error: { type: string, resets_at: number, message: string } }
  assert.equal(body.error.type, 'usage_limit_reached')
  assert.equal(body.error.resets_at, resetsAt, 'the model\'s earliest reset')
  assert.match(body.error.message, /GPT-5\.3-Codex-Spark/)
  assert.equal(out.response.headers.get('x-codex-active-limit'), 'codex_bengalfox')
  assert.equal(out.response.headers.get('x-codex-bengalfox-limit-name'), 'GPT-5.3-Codex-Spark')

  const calls = stack.fake.backend.requests.length
  const other = await turn(stack, responsesBody('plain model', { model: 'gpt-5-codex', prompt_cache_key: 'third' }), { 'session-id': 'third' })
  assert.equal(other.response.status, 200, 'other models are still served')
  assert.equal(stack.fake.backend.requests.length, calls + 1)
})

test('an overload inside a 200 stream, before any content, fails over unseen; the headers are the serving account\'s', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  stack.fake.backend.script(a.accountId, { kind: 'stream_failed', code: 'server_is_overloaded', message: 'Our servers are currently overloaded.' })
  const { response, text } = await turn(stack)
  assert.equal(response.status, 200)
  assert.doesNotMatch(text, /response\.failed|overloaded/)
  assert.match(text, /served by b@example.com/)
  assert.equal(response.headers.get('x-codex-eq-account'), b.id)
  assert.equal(response.headers.get('x-codex-eq-skipped'), `${a.id}=overload`, 'an overload failover, told apart from other upstream trouble')
  assert.match(await (await fetch(`${stack.url}/metrics`)).text(), /codex_eq_failovers_total\{kind="resting",cause="overload"\} 1/)
  const turnState = response.headers.get('x-codex-turn-state') ?? ''
  assert.ok(turnState.startsWith(`ts_${b.accountId}_`), `b's own turn state: ${turnState}`)
  assert.equal((await views(stack))[0]!.status, 'resting')
})

for (const transport of ['http', 'websocket'] as const) {
  test(`an overload inside the stream on every account (${transport}) is an outage answered with a 503 Codex retries, not the stream Codex would end the turn on`, async (t) => {
    const stack = await startStack(t)
    const a = await stack.addAccount({ email: 'a@example.com' })
    const b = await stack.addAccount({ email: 'b@example.com' })
    for (const account of [a, b]) stack.fake.backend.script(account.accountId, { kind: 'stream_failed', code: 'server_is_overloaded', message: 'Our servers are currently overloaded.' })
    if (transport === 'http') {
      const { response, text } = await turn(stack)
      assert.equal(response.status, 503)
      assert.equal(response.headers.get('x-codex-eq-outage'), 'overloaded')
      assert.doesNotMatch(text, /response\.failed/, 'no stream reaches the client')
      assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'server_is_overloaded')
    } else {
      const client = await openWs(`${stack.url.replace('http', 'ws')}/backend-api/codex/responses`)
      const frames = await client.turn({ ...responsesBody(), type: 'response.create' })
      await client.close()
      assert.deepEqual(frames.map((frame) => [frame.type, frame.status, frame.error?.code]), [['error', 503, 'server_is_overloaded']])
    }
    assert.equal(stack.fake.backend.requests.length, 2, 'both accounts were tried')
    assert.ok((await views(stack)).every((view) => view.status === 'active'), 'an outage rests nobody')
  })
}

test('a stream error that is the request\'s own (context too long) is delivered as it is', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  await stack.addAccount()
  stack.fake.backend.script(a.accountId, { kind: 'stream_failed', code: 'context_length_exceeded', message: 'Your input exceeds the context window of this model.' })
  const { text } = await turn(stack)
  assert.match(text, /context_length_exceeded/)
  assert.equal(stack.fake.backend.requests.length, 1)
  assert.equal((await views(stack))[0]!.status, 'active')
})

test('no usable account: the Codex CLI gets a 400 text/plain it shows at once, naming the command that works; other clients a JSON 503', async (t) => {
  const stack = await startStack(t)
  const codex = { originator: 'codex_exec', 'user-agent': 'codex_exec/0.171.0 (Debian 12.0.0; x86_64)' }
  const empty = await turn(stack, responsesBody(), codex)
  assert.equal(empty.response.status, 400)
  assert.match(empty.response.headers.get('content-type') ?? '', /^text\/plain/)
  assert.match(empty.text, /no accounts yet/)
  assert.ok(empty.text.includes(`codex-eq login --server ${stack.url}`), empty.text)
  const json = await turn(stack)
  assert.equal(json.response.status, 503)
  assert.equal((JSON.parse(json.text) as { error: { type: string } }).error.type, 'no_usable_account')

  const only = await stack.addAccount()
  stack.fake.issuer.failRefresh(only.accountId, 'invalidated')
  stack.fake.backend.revokeAccessTokens(only.accountId)
  await turn(stack) // the 401's refresh is refused for good: needs login
  const locked = await turn(stack, responsesBody(), codex)
  assert.equal(locked.response.status, 400)
  assert.match(locked.text, /every account needs a new login/)
})

test('with --websocket off, a WebSocket upgrade on /v1/responses is answered 426 at once, touching no account', async (t) => {
  const stack = await startStack(t, { settings: { websocket: 'off' } })
  await stack.addAccount()
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${stack.url}/v1/responses`, {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', 'openai-beta': 'responses_websockets=2026-02-06' }
    })
    req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('upgrade', () => { reject(new Error('upgraded')) })
    req.on('error', reject)
    req.end()
  })
  assert.equal(status, 426)
  assert.equal(stack.fake.backend.requests.length, 0)
  const [view] = await views(stack) as [View]
  assert.deepEqual([view.status, view.last_error, view.requests], ['active', null, 0])
})

test('clients that leave mid-stream are nobody\'s fault: no account error, no warning', { timeout: 30_000 }, async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  stack.fake.backend.streamOptions.deltas = 200
  const payload = JSON.stringify(responsesBody('x'.repeat(2000)))
  // Clients that hang up as the last events arrive, as at the end of a load run: the upstream has
  // ended, the proxy's last writes may still be on their way.
  const runs = 40
  await Promise.all(Array.from({ length: runs }, async () => {
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } }, (res) => {
        res.on('data', (chunk: Buffer) => { if (chunk.includes('response.completed')) req.destroy() })
        res.on('close', () => resolve())
      })
      req.on('error', () => resolve())
      req.end(payload)
    })
  }))
  await delay(300)
  const [view] = await views(stack) as [View]
  assert.equal(view.id, account.id)
  assert.equal(view.last_error, null)
  assert.equal(stack.logs.filter((line) => line.msg === 'upstream stream broke').length, 0)
})
