import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { startHttpProxy, startSocks5Proxy } from '../helpers/egress-proxies.js'
import { openWs } from '../helpers/ws-client.js'

const user = (text: string): Record<string, unknown> => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] })
const wsUrl = (stack: Stack, mount = '/backend-api/codex'): string => `${stack.url.replace('http', 'ws')}${mount}/responses`
/** A turn's body as Codex sends it over WebSocket: no `stream` (the transport streams). */
const wsBody = (input: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => {
  const { stream: _stream, ...body } = responsesBody('x', { input, ...extra })
  return body
}
const textOf = (frames: Array<Record<string, any>>): string => frames.filter((f) => f.type === 'response.output_text.delta').map((f) => f.delta as string).join('')

async function until (what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await delay(25)
  assert.ok(check(), what)
}

test('turns over WebSocket: events come back unchanged, a chained turn sends only its new items on the same upstream connection', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  for (const mount of ['/backend-api/codex', '/v1']) {
    const client = await openWs(wsUrl(stack, mount), { 'session-id': `ws-${mount}` })
    const first = await client.turn(wsBody([user('first')]))
    assert.equal(first.at(-1)!.type, 'response.completed')
    assert.equal(first[0]!.type, 'response.created')
    assert.equal(textOf(first), 'served by a@example.com: first')
    const responseId = first.at(-1)!.response.id as string
    const second = await client.turn(wsBody([user('second')], { previous_response_id: responseId }))
    assert.equal(second.at(-1)!.type, 'response.completed', JSON.stringify(second.at(-1)))
    assert.equal(textOf(second), 'served by a@example.com: second')
    const frames = stack.fake.backend.requests.filter((r) => r.transport === 'websocket').slice(-2)
    assert.equal(frames.length, 2, 'both turns went upstream over WebSocket, none over HTTP')
    assert.equal(frames[0]!.connection, frames[1]!.connection, 'one upstream connection for the chain')
    assert.equal(frames[1]!.body.previous_response_id, responseId)
    assert.deepEqual(frames[1]!.body.input, [user('second')], 'only the new items')
    assert.equal(frames[1]!.headers.authorization, `Bearer ${a.tokens.access_token}`)
    assert.equal(frames[1]!.headers['session-id'], `ws-${mount}`)
    await client.close()
  }
  assert.equal(stack.fake.backend.requests.filter((r) => r.transport === 'http').length, 0)
  await until('the client leaving closes the upstream', () => stack.fake.backend.wsConnections.every((c) => c.closed))
})

test('a turn over WebSocket fails over before its first content: usage limit as an error frame, then overload as response.failed', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  const c = await stack.addAccount({ email: 'c@example.com' })
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 3600, via: 'body' })
  stack.fake.backend.script(b.accountId, { kind: 'stream_failed', code: 'server_is_overloaded', message: 'busy' })
  const client = await openWs(wsUrl(stack))
  const frames = await client.turn(wsBody([user('hello')]))
  assert.equal(frames.at(-1)!.type, 'response.completed')
  assert.equal(textOf(frames), 'served by c@example.com: hello')
  assert.ok(frames.every((f) => f.type !== 'error' && f.type !== 'response.failed'), 'the client saw none of the failures')
  const sent = stack.fake.backend.requests.map((r) => [r.transport, r.accountId, r.status])
  assert.deepEqual(sent, [['websocket', a.accountId, 429], ['websocket', b.accountId, 200], ['websocket', c.accountId, 200]])
  const accounts = await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, unknown>>
  assert.equal(accounts[0]!.status, 'cooling')
  await client.close()
})

test('a chained turn whose account runs out gets a retryable response.failed, and the resent history is served elsewhere', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  await stack.addAccount({ email: 'b@example.com' })
  const client = await openWs(wsUrl(stack), { 'session-id': 'chain-moves' })
  const first = await client.turn(wsBody([user('first')]))
  const responseId = first.at(-1)!.response.id as string
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 3600, via: 'body' })
  const second = await client.turn(wsBody([user('second')], { previous_response_id: responseId }))
  assert.equal(second.length, 1)
  assert.equal(second[0]!.type, 'response.failed')
  const code = second[0]!.response.error.code as string
  assert.ok(!['context_length_exceeded', 'insufficient_quota', 'usage_not_included', 'cyber_policy', 'invalid_prompt', 'server_is_overloaded', 'slow_down'].includes(code), `a code Codex retries: ${code}`)
  await client.close()
  // Codex then opens a new connection and sends everything.
  const again = await openWs(wsUrl(stack), { 'session-id': 'chain-moves' })
  const resent = await again.turn(wsBody([user('first'), user('second')]))
  assert.equal(textOf(resent), 'served by b@example.com: second')
  await again.close()
})

test('a chained turn whose upstream connection is gone (a new client connection) gets a retryable response.failed without touching an account', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'a@example.com' })
  const client = await openWs(wsUrl(stack), { 'session-id': 'chain-lost' })
  const first = await client.turn(wsBody([user('first')]))
  const responseId = first.at(-1)!.response.id as string
  await client.close()
  const calls = stack.fake.backend.requests.length
  const fresh = await openWs(wsUrl(stack), { 'session-id': 'chain-lost' })
  const chained = await fresh.turn(wsBody([user('second')], { previous_response_id: responseId }))
  assert.equal(chained.length, 1)
  assert.equal(chained[0]!.type, 'response.failed')
  const code = chained[0]!.response.error.code as string
  assert.ok(!['context_length_exceeded', 'insufficient_quota', 'usage_not_included', 'cyber_policy', 'invalid_prompt', 'server_is_overloaded', 'slow_down', 'previous_response_not_found'].includes(code), `a code Codex retries: ${code}`)
  assert.equal(stack.fake.backend.requests.length, calls, 'no upstream call')
  const resent = await fresh.turn(wsBody([user('first'), user('second')]))
  assert.equal(textOf(resent), 'served by a@example.com: second')
  await fresh.close()
})

test('frames waiting for their turn count in --max-buffered: past it an error frame 503 with Retry-After, and a frame larger than all of it 413', async (t) => {
  const stack = await startStack(t, { settings: { maxBuffered: '3mib' } })
  const account = await stack.addAccount()
  stack.fake.backend.script(account.accountId, { kind: 'hang' })
  const client = await openWs(wsUrl(stack))
  const frames: Array<Record<string, any>> = []
  client.socket.on('message', (data: Buffer) => { frames.push(JSON.parse(data.toString('utf8')) as Record<string, any>) })
  const frame = (text: string): string => JSON.stringify({ type: 'response.create', ...wsBody([user(text)]) })
  const big = 'x'.repeat(1200 * 1024)
  client.socket.send(frame(`first ${big}`)) // hangs at the backend, held
  client.socket.send(frame(`second ${big}`)) // waits for its turn, held
  client.socket.send(frame(`third ${big}`)) // does not fit
  client.socket.send(frame('x'.repeat(4 * 1024 * 1024))) // never fits
  await until('two refusals', () => frames.length >= 2)
  assert.deepEqual(frames.map((f) => [f.type, f.status, f.error?.type]), [['error', 503, 'server_busy'], ['error', 413, 'body_too_large']])
  assert.equal(frames[0]!.headers?.['retry-after'], '2')
  assert.match(frames[0]!.error.message as string, /--max-buffered/)
  await client.close()
  // Once the connection is gone (and its turn with it) its frames are let go: a client following
  // Retry-After gets in again. Bounded: 50 tries.
  const again = await openWs(wsUrl(stack))
  let served = await again.turn(wsBody([user(`after ${big}`)]))
  for (let tries = 1; served.at(-1)!.status === 503 && tries < 50; tries++) {
    await delay(100)
    served = await again.turn(wsBody([user(`after ${big}`)]))
  }
  assert.equal(served.at(-1)!.type, 'response.completed', JSON.stringify(served.at(-1)))
  await again.close()
})

test('the whole pool out over WebSocket: an error frame 429 usage_limit_reached with the reset', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  const resetsAt = Math.floor(Date.now() / 1000) + 1800
  stack.fake.backend.setExhausted(a.accountId, { resetsAt, via: 'body' })
  const client = await openWs(wsUrl(stack))
  const frames = await client.turn(wsBody([user('x')]))
  assert.equal(frames.length, 1)
  assert.equal(frames[0]!.type, 'error')
  assert.equal(frames[0]!.status, 429)
  assert.equal(frames[0]!.error.type, 'usage_limit_reached')
  assert.equal(frames[0]!.error.resets_at, resetsAt)
  await client.close()
})

test('upgrades honour API keys and the site guard; with --websocket off they get 426 and no account is involved', async (t) => {
  const stack = await startStack(t, { settings: { apiKey: ['client-key-0123456789'], adminToken: 'admin-token-0123456789' } })
  await stack.addAccount()
  await assert.rejects(openWs(wsUrl(stack)), (err: { status?: number }) => err.status === 401)
  await assert.rejects(openWs(wsUrl(stack), { authorization: 'Bearer client-key-0123456789', origin: 'https://evil.example' }), (err: { status?: number }) => err.status === 403)
  await assert.rejects(openWs(`${stack.url.replace('http', 'ws')}/v1/models`, { authorization: 'Bearer client-key-0123456789' }), (err: { status?: number }) => err.status === 426)
  const client = await openWs(wsUrl(stack), { authorization: 'Bearer client-key-0123456789' })
  const refused = await new Promise<Record<string, any>>((resolve) => {
    client.socket.once('message', (data: Buffer) => { resolve(JSON.parse(data.toString('utf8')) as Record<string, any>) })
    client.socket.send('{"type":"response.cancel"}')
  })
  assert.equal(refused.type, 'error')
  assert.equal(refused.status, 400, 'a frame that is not response.create is the request\'s fault')
  const frames = await client.turn(wsBody([user('keyed')]))
  assert.equal(frames.at(-1)!.type, 'response.completed')
  assert.doesNotMatch(String(stack.fake.backend.requests.at(-1)!.headers.authorization), /client-key/)
  await client.close()

  const off = await startStack(t, { settings: { websocket: 'off' } })
  await off.addAccount()
  await assert.rejects(openWs(wsUrl(off)), (err: { status?: number, body?: string }) => err.status === 426 && /websocket_not_supported/.test(err.body ?? ''))
  assert.equal(off.fake.backend.requests.length, 0)
  assert.equal(off.fake.backend.wsConnections.length, 0)
})

test('an empty pool over WebSocket: a fatal error frame 400 naming the login command, at once', async (t) => {
  const stack = await startStack(t)
  const client = await openWs(wsUrl(stack), { originator: 'codex_exec' })
  const frames = await client.turn(wsBody([user('anyone?')]))
  assert.equal(frames.length, 1)
  assert.deepEqual([frames[0]!.type, frames[0]!.status], ['error', 400])
  assert.match(String(frames[0]!.error.message), /codex-eq login --server http:\/\/127\.0\.0\.1:\d+/)
  await client.close()
})

test('over WebSocket a moved conversation drops foreign blobs up front, and blobs never seen after one refusal', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  const b = await stack.addAccount({ email: 'b@example.com' })
  const session = { 'session-id': 'ws-moving' }
  const first = await openWs(wsUrl(stack), session)
  const turn = await first.turn(wsBody([user('first')]))
  await first.close()
  const reasoning = turn.find((f) => f.type === 'response.output_item.done' && f.item.type === 'reasoning')!.item as Record<string, unknown>
  const history = [user('first'), reasoning, user('second')]
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 600, via: 'body' })

  let calls = stack.fake.backend.requests.length
  const moved = await openWs(wsUrl(stack), session)
  assert.equal(textOf(await moved.turn(wsBody(history))), 'served by b@example.com: second')
  await moved.close()
  assert.deepEqual(stack.fake.backend.requests.slice(calls).map((r) => [r.accountId, r.status, r.blobs.length]), [[a.accountId, 429, 1], [b.accountId, 200, 0]], 'A\'s reasoning went before the call')

  await stack.restart() // the pool forgets which account made which blob
  calls = stack.fake.backend.requests.length
  const after = await openWs(wsUrl(stack), session)
  assert.equal(textOf(await after.turn(wsBody(history))), 'served by b@example.com: second')
  await after.close()
  // A still rests (rests survive a restart); B refuses the blob it cannot know, then serves without it.
  assert.deepEqual(stack.fake.backend.requests.slice(calls).map((r) => [r.accountId, r.status]), [[b.accountId, 400], [b.accountId, 200]])
})

test('an upstream silent past --stream-idle-timeout is given up: the client connection closes, so Codex retries', { timeout: 30_000 }, async (t) => {
  const stack = await startStack(t, { settings: { streamIdleTimeout: '1s', streamHold: '200ms' } })
  const a = await stack.addAccount()
  stack.fake.backend.script(a.accountId, { kind: 'hang' })
  const client = await openWs(wsUrl(stack))
  await assert.rejects(client.turn(wsBody([user('anyone?')])), /socket closed \(1011\)/)
  await until('the upstream connection is closed too', () => stack.fake.backend.wsConnections.every((c) => c.closed))
  const accounts = await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, unknown>>
  assert.match(String(accounts[0]!.last_error), /stream broke: UPSTREAM_IDLE/)
})

test('a turn retried on the same account whose stream then breaks reaches the client broken (closed), not hanging', { timeout: 30_000 }, async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  stack.fake.backend.script(a.accountId, { kind: 'status', status: 403 }, { kind: 'drop', afterEvents: 5 })
  const client = await openWs(wsUrl(stack))
  await assert.rejects(client.turn(wsBody([user('retry me')])), /socket closed \(1011\)/)
  assert.deepEqual(stack.fake.backend.requests.map((r) => [r.accountId, r.status]), [[a.accountId, 403], [a.accountId, 200]])
})

test('a client leaving mid-turn closes the upstream and no stream stays counted', { timeout: 30_000 }, async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount()
  stack.fake.backend.script(a.accountId, { kind: 'slow', eventDelayMs: 300 })
  const client = await openWs(wsUrl(stack))
  const firstContent = new Promise<void>((resolve) => {
    client.socket.on('message', (data: Buffer) => { if (/output_item/.test(data.toString('utf8'))) resolve() })
  })
  void client.turn(wsBody([user('long answer')])).catch(() => undefined)
  await firstContent
  client.socket.terminate()
  await until('the upstream connection is closed', () => stack.fake.backend.wsConnections.every((c) => c.closed))
  let metrics = ''
  for (let i = 0; i < 100 && !/codex_eq_open_streams 0/.test(metrics); i++) {
    metrics = await (await fetch(`${stack.url}/metrics`)).text()
    if (!/codex_eq_open_streams 0/.test(metrics)) await delay(50)
  }
  assert.match(metrics, /codex_eq_open_streams 0/, 'no stream stays counted')
  assert.ok(stack.logs.some((line) => line.msg === 'client left during the stream'))
})

test('an account\'s upstream WebSocket goes through its own egress proxy (HTTP CONNECT, SOCKS5), a dead proxy fails over; run-time client keys open upgrades too', async (t) => {
  const httpProxy = await startHttpProxy(t, 'alice', 'ws-http-pass-3311')
  const socksProxy = await startSocks5Proxy(t, 'bob', 'ws-socks-pass-7720')
  const stack = await startStack(t)
  const viaHttp = await stack.addAccount({ email: 'via-http@example.com' })
  const viaSocks = await stack.addAccount({ email: 'via-socks@example.com' })
  const direct = await stack.addAccount({ email: 'direct@example.com' })
  const call = async (method: string, path: string, body?: unknown): Promise<number> => (await fetch(`${stack.url}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })).status
  assert.equal(await call('PATCH', `/accounts/${viaHttp.id}`, { proxy: httpProxy.url }), 200)
  assert.equal(await call('PATCH', `/accounts/${viaSocks.id}`, { proxy: socksProxy.url }), 200)
  const upgradesCarried = (proxy: typeof httpProxy): Array<string | undefined> => proxy.carried().filter((r) => r.method === 'GET' && r.path.endsWith('/responses')).map((r) => r.accountId)

  for (const account of [viaHttp, viaSocks, direct]) {
    assert.equal(await call('POST', `/accounts/${account.id}/select`), 200)
    const client = await openWs(wsUrl(stack))
    // A conversation of its own each: an earlier one would stay with the account that served it.
    const frames = await client.turn(wsBody([user('hello')], { prompt_cache_key: `conversation-${account.id}` }))
    assert.equal(textOf(frames), `served by ${account.email}: hello`)
    await client.close()
  }
  assert.deepEqual(upgradesCarried(httpProxy), [viaHttp.accountId], 'the HTTP proxy carried its own account\'s upgrade and nobody else\'s')
  assert.deepEqual(upgradesCarried(socksProxy), [viaSocks.accountId], 'the SOCKS proxy carried its own account\'s upgrade and nobody else\'s')
  assert.equal(stack.fake.backend.requests.filter((r) => r.transport === 'http').length, 0, 'every turn stayed on WebSocket')

  // A proxy nobody answers on is the account's fault: the turn moves on, and the reason names the proxy.
  assert.equal(await call('PATCH', `/accounts/${viaHttp.id}`, { proxy: 'http://127.0.0.1:9' }), 200)
  assert.equal(await call('POST', `/accounts/${viaHttp.id}/select`), 200)
  const moved = await openWs(wsUrl(stack))
  assert.equal(textOf(await moved.turn(wsBody([user('again')], { prompt_cache_key: 'conversation-again' }))), 'served by via-socks@example.com: again')
  await moved.close()
  const dead = (await (await fetch(`${stack.url}/accounts/${viaHttp.id}`)).json()) as { last_error: string | null }
  assert.match(dead.last_error ?? '', /proxy/i)

  const keyed = await startStack(t)
  await keyed.addAccount()
  const made = await fetch(`${keyed.url}/keys`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'laptop' }) })
  const { secret } = await made.json() as { secret: string }
  await assert.rejects(openWs(wsUrl(keyed)), (err: { status?: number }) => err.status === 401, 'a run-time key makes keys required')
  const client = await openWs(wsUrl(keyed), { authorization: `Bearer ${secret}` })
  const frames = await client.turn(wsBody([user('with a run-time key')]))
  assert.equal(frames.at(-1)!.type, 'response.completed')
  await client.close()
})

test('a WebSocket turn\'s usage is counted in the ledger under its client key, as an HTTP turn\'s is', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  const made = await fetch(`${stack.url}/keys`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'editor' }) })
  const { secret } = await made.json() as { secret: string }
  const client = await openWs(wsUrl(stack), { authorization: `Bearer ${secret}` })
  const frames = await client.turn(wsBody([user('count me')]))
  await client.close()
  const usage = frames.at(-1)!.response.usage as { input_tokens: number, output_tokens: number }
  const report = await (await fetch(`${stack.url}/usage?by=key&bucket=hour`)).json() as { groups: Array<{ name: string, totals: { input: number, output: number } }> }
  const editor = report.groups.find((group) => group.name === 'editor')
  assert.ok(editor !== undefined, JSON.stringify(report))
  assert.equal(editor.totals.input, usage.input_tokens)
  assert.equal(editor.totals.output, usage.output_tokens)
})

test('turns over WebSocket are listed among the recent requests: the served one with its tokens, the refused one with its status', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com' })
  const client = await openWs(wsUrl(stack), { 'session-id': 'listed' })
  const served = await client.turn(wsBody([user('count this turn')]))
  const usage = served.at(-1)!.response.usage as { input_tokens: number, output_tokens: number }
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 3600, via: 'body' })
  const refused = await client.turn(wsBody([user('no account left')]))
  assert.equal(refused.at(-1)!.type, 'error')
  await client.close()
  const recent = await fetch(`${stack.url}/requests/recent`).then(async (r) => await r.json()) as Array<Record<string, unknown>>
  assert.deepEqual(recent.map((entry) => ({ ...entry, at: undefined, ms: undefined })), [
    { at: undefined, ms: undefined, key: 'none', account: null, model: null, status: refused.at(-1)!.status, attempts: 1, tokens: null },
    { at: undefined, ms: undefined, key: 'none', account: a.id, model: 'gpt-5-codex', status: 200, attempts: 1, tokens: usage.input_tokens + usage.output_tokens }
  ])
})
