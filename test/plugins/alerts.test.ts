import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { EventEmitter } from 'node:events'
import { alertOnPoolEvents } from '../../src/alerts/pool-alerts.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { SIGNATURE_HEADER, WebhookAlerts } from '../../src/alerts/webhook-alerts.js'
import type { AccountPool } from '../../src/pool/account-pool.js'
import { postResponses, startStack } from '../helpers/stack.js'

const SECRET = 'webhook-secret-0123456789'

interface Received { body: any, raw: string, signature: string | undefined }

/** A webhook receiver on loopback; `answer` decides each reply (default 204). */
async function startReceiver (t: TestContext, answer: (req: IncomingMessage, res: ServerResponse, n: number) => void = (_req, res) => { res.writeHead(204).end() }) {
  const received: Received[] = []
  const sockets = new Set<Socket>()
  const waiters: Array<() => void> = []
  let n = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8')
      received.push({ body: JSON.parse(raw), raw, signature: req.headers[SIGNATURE_HEADER] as string | undefined })
      for (const wake of waiters.splice(0)) wake()
      answer(req, res, n++)
    })
  })
  server.on('connection', (socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/s3cr3t-path`
  /** Waits (bounded) until an alert matching `match` arrived. */
  const waitFor = async (match: (r: Received) => boolean, what: string, ms = 20_000): Promise<Received> => {
    const deadline = Date.now() + ms
    for (;;) {
      const found = received.find(match)
      if (found !== undefined) return found
      if (Date.now() > deadline) throw new Error(`no ${what} alert within ${ms} ms; got ${received.map((r) => r.body.type).join(', ')}`)
      await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 200) })
    }
  }
  return { url, received, waitFor }
}

function assertSigned (r: Received): void {
  assert.ok(r.signature !== undefined, 'the alert carries a signature header')
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(r.signature)
  assert.ok(match !== null, `signature header shape: ${r.signature}`)
  assert.ok(Math.abs(Number(match[1]) - Date.now() / 1000) < 300, 'the timestamp is now')
  const expected = createHmac('sha256', SECRET).update(`${match[1]}.${r.raw}`).digest()
  assert.ok(timingSafeEqual(expected, Buffer.from(match[2]!, 'hex')), 'the HMAC over "t.body" matches the shared secret')
}

test('cooling, disabled, needs login and pool exhausted reach the webhook, signed, without the secret anywhere', async (t) => {
  const receiver = await startReceiver(t)
  const stack = await startStack(t, { settings: { webhook: [receiver.url], webhookSecret: SECRET } })
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com' })
  const third = await stack.addAccount({ email: 'third@example.com' })

  stack.fake.backend.setExhausted(first.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 3600 })
  stack.fake.backend.script(second.accountId, { kind: 'status', status: 403 }, { kind: 'status', status: 403 }, { kind: 'status', status: 403 })
  const served = await postResponses(stack)
  assert.equal(served.status, 200)
  assert.match(await served.text(), /served by third@example.com/)

  const cooling = await receiver.waitFor((r) => r.body.type === 'account_cooling', 'cooling')
  assertSigned(cooling)
  assert.deepEqual(cooling.body.account, { id: first.id, email: 'first@example.com' })
  assert.match(cooling.body.message, /first@example.com reached its usage limit/)
  assert.equal(typeof cooling.body.details.until, 'string')
  const disabled = await receiver.waitFor((r) => r.body.type === 'account_disabled', 'disabled')
  assertSigned(disabled)
  assert.deepEqual(disabled.body.account, { id: second.id, email: 'second@example.com' })

  stack.fake.issuer.failRefresh(third.accountId, 'invalidated')
  const refused = await fetch(`${stack.url}/accounts/${third.id}/refresh`, { method: 'POST' })
  assert.equal(refused.status, 409)
  const login = await receiver.waitFor((r) => r.body.type === 'account_needs_login', 'needs login')
  assertSigned(login)
  assert.equal(login.body.account.email, 'third@example.com')

  const exhausted = await postResponses(stack)
  assert.ok(exhausted.status >= 400)
  await exhausted.text()
  const again = await postResponses(stack)
  await again.text()
  const alert = await receiver.waitFor((r) => r.body.type === 'pool_exhausted', 'pool exhausted')
  assertSigned(alert)
  assert.match(alert.body.message, /no account can serve/)
  // Every request of an exhausted pool fails: one alert per minute is enough to wake someone.
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.equal(receiver.received.filter((r) => r.body.type === 'pool_exhausted').length, 1)

  for (const r of receiver.received) {
    assert.ok(!r.raw.includes(SECRET), 'the secret is not in the body')
    for (const account of stack.fake.accounts) {
      for (const token of Object.values(account.tokens)) if (typeof token === 'string' && token.length > 20) assert.ok(!r.raw.includes(token), 'no token in an alert')
    }
  }
  const logged = JSON.stringify(stack.logs)
  assert.ok(!logged.includes(SECRET) && !logged.includes('s3cr3t-path'), 'neither the secret nor the webhook path is logged')
})

test('a failed delivery is retried in the background', async (t) => {
  const receiver = await startReceiver(t, (_req, res, n) => { res.writeHead(n === 0 ? 503 : 200).end() })
  const stack = await startStack(t, { settings: { webhook: [receiver.url] } })
  const response = await postResponses(stack) // no accounts: the pool is exhausted
  await response.text()
  await receiver.waitFor((r) => r.body.type === 'pool_exhausted', 'first attempt')
  const deadline = Date.now() + 20_000
  while (receiver.received.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(receiver.received.length, 2, 'the alert was sent again after a 503')
  assert.equal(receiver.received[1]!.raw, receiver.received[0]!.raw, 'the same alert')
  assert.equal(receiver.received[0]!.signature, undefined, 'no signature without a secret')
})

test('a dead or hanging receiver never slows a request', async (t) => {
  const hanging = await startReceiver(t, () => { /* never answers */ })
  const dead = await startReceiver(t)
  const deadUrl = dead.url.replace(/:\d+\//, ':1/') // nothing listens on port 1
  const stack = await startStack(t, { settings: { webhook: [hanging.url, deadUrl], webhookSecret: SECRET } })
  const account = await stack.addAccount({ email: 'only@example.com' })
  stack.fake.backend.setExhausted(account.accountId, { resetsAt: Math.floor(Date.now() / 1000) + 3600 })
  const times: number[] = []
  for (let i = 0; i < 5; i++) {
    const started = Date.now()
    const response = await postResponses(stack)
    assert.equal(response.status, 429)
    await response.text()
    times.push(Date.now() - started)
  }
  await hanging.waitFor((r) => r.body.type === 'account_cooling', 'cooling, held by the hanging receiver')
  // The hanging receiver holds its connections for the 10 s delivery timeout; requests go on meanwhile.
  const started = Date.now()
  const response = await postResponses(stack)
  await response.text()
  times.push(Date.now() - started)
  assert.ok(Math.max(...times) < 5_000, `requests took ${times.join(', ')} ms`)
  assert.ok(stack.logs.some((line) => line.msg === 'alert not delivered: will retry' && line.webhook === 'http://127.0.0.1:1'), 'the dead receiver is logged by origin')
})

test('the queue is bounded: alerts beyond it are dropped, not kept', async () => {
  const warnings: unknown[] = []
  const alerts = new WebhookAlerts({ urls: ['http://127.0.0.1:1/'], secret: null, log: { warn: (o) => { warnings.push(o) }, debug: () => {} }, maxQueued: 3, retryDelaysMs: [60_000] })
  try {
    for (let i = 0; i < 50; i++) alerts.emit({ type: 'outage_started', message: `outage ${i}` })
    assert.ok(warnings.some((w) => (w as { dropped?: number }).dropped === 1), 'the first drop is logged')
  } finally {
    alerts.close()
  }
})

test('outage begun and ended become alerts; brief rests do not', () => {
  const pool = new EventEmitter() as unknown as AccountPool & EventEmitter
  ;(pool as unknown as { get: () => undefined }).get = () => undefined
  const sent: any[] = []
  const alerts = { emit: (a: unknown) => { sent.push(a) } } as unknown as WebhookAlerts
  const stop = alertOnPoolEvents(pool, alerts)
  pool.emit('outage', { fault: 'upstream' })
  pool.emit('rest', { account: 'a1', kind: 'resting', until: Date.now() + 1000, source: 'upstream' })
  pool.emit('outage-end', { fault: 'upstream' })
  stop()
  pool.emit('outage', { fault: 'upstream' })
  assert.deepEqual(sent.map((a) => a.type), ['outage_started', 'outage_ended'])
})

test('webhooks come from --webhook (repeatable) or CODEX_EQ_WEBHOOKS; a bad one stops start-up without echoing it', () => {
  const fromEnv = loadConfig({}, { CODEX_EQ_WEBHOOKS: 'http://127.0.0.1:9/a, https://hooks.example.com/b?token=x', CODEX_EQ_WEBHOOK_SECRET: SECRET })
  assert.deepEqual(fromEnv.webhooks, ['http://127.0.0.1:9/a', 'https://hooks.example.com/b?token=x'])
  assert.equal(fromEnv.webhookSecret, SECRET)
  assert.deepEqual(loadConfig({ webhook: ['http://127.0.0.1:9/x', 'http://127.0.0.1:9/y'] }, {}).webhooks, ['http://127.0.0.1:9/x', 'http://127.0.0.1:9/y'])
  assert.deepEqual(loadConfig({}, {}).webhooks, [])
  assert.equal(loadConfig({}, {}).webhookSecret, null)
  assert.throws(() => loadConfig({ webhook: ['ftp://hooks.example.com/secret-path-1'] }, {}), (err: Error) => err instanceof ConfigError && /--webhook/.test(err.message) && !err.message.includes('secret-path-1'))
  assert.throws(() => loadConfig({ webhook: ['not a url secret-path-2'] }, {}), (err: Error) => err instanceof ConfigError && !err.message.includes('secret-path-2'))
  assert.throws(() => loadConfig({ webhookSecret: 'short' }, {}), (err: Error) => err instanceof ConfigError && /--webhook-secret/.test(err.message) && !err.message.includes('short'))
})
