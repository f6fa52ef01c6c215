import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { responsesBody, startStack, type Stack } from '../helpers/stack.js'

/** What passed between the app and the upstream for one request, as the upstream wrote it. */
interface Exchange {
  path: string
  chunks: Buffer[]
  /** The upstream finished its answer. */
  upstreamEnded: boolean
  /** The app closed its upstream request before the answer was complete. */
  abortedByApp: boolean
  /** Settles when the exchange is over, either way. */
  done: Promise<void>
}

/**
 * A transparent HTTP relay between the app and the fake backend: it forwards each request and
 * passes every chunk on the moment it arrives, recording what the upstream wrote and whether the
 * app hung up early (then it hangs up on the upstream too).
 */
async function startTap (t: TestContext): Promise<{ url: string, target: string, exchanges: Exchange[] }> {
  const tap = { url: '', target: '', exchanges: [] as Exchange[] }
  const server = createServer((req, res) => {
    let finish!: () => void
    const exchange: Exchange = { path: req.url ?? '', chunks: [], upstreamEnded: false, abortedByApp: false, done: new Promise((resolve) => { finish = resolve }) }
    tap.exchanges.push(exchange)
    const upstream = httpRequest(`${tap.target}${req.url ?? ''}`, { method: req.method, headers: req.headers, agent: false }, (answer) => {
      const headers = { ...answer.headers }
      delete headers['transfer-encoding']
      delete headers.connection
      res.writeHead(answer.statusCode ?? 502, headers)
      res.flushHeaders()
      answer.on('data', (chunk: Buffer) => {
        exchange.chunks.push(chunk)
        res.write(chunk)
      })
      answer.on('end', () => {
        exchange.upstreamEnded = true
        res.end()
      })
      answer.on('error', () => { res.destroy() })
    })
    upstream.on('error', () => { res.destroy() })
    res.on('close', () => {
      if (!res.writableFinished) {
        exchange.abortedByApp = true
        upstream.destroy()
      }
      finish()
    })
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  tap.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.after(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return tap
}

/** A raw HTTP client for one streamed turn: sees bytes as they arrive, can hang up at any moment. */
class StreamClient {
  readonly chunks: Buffer[] = []
  response: IncomingMessage | null = null
  ended = false
  failed: Error | null = null
  private readonly req: ClientRequest
  private changed: () => void = () => {}

  constructor (url: string, body: unknown, headers: Record<string, string> = {}) {
    const payload = JSON.stringify(body)
    this.req = httpRequest(`${url}/v1/responses`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'content-length': String(Buffer.byteLength(payload)), ...headers }
    }, (res) => {
      this.response = res
      res.on('data', (chunk: Buffer) => { this.chunks.push(chunk); this.changed() })
      res.on('end', () => { this.ended = true; this.changed() })
      res.on('error', (err) => { this.failed = err; this.changed() })
      res.on('close', () => { if (!this.ended && this.failed === null) this.failed = new Error('closed before the end'); this.changed() })
      this.changed()
    })
    this.req.on('error', (err) => { this.failed = err; this.changed() })
    this.req.end(payload)
  }

  get text (): string {
    return Buffer.concat(this.chunks).toString('utf8')
  }

  /** Complete SSE events received so far. */
  get events (): string[] {
    return this.text.split('\n\n').slice(0, -1)
  }

  /** Waits until `condition` holds, failing after `ms`. */
  async until (condition: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((resolve) => {
        this.changed = resolve
        setTimeout(resolve, 50)
      })
    }
  }

  async finished (): Promise<void> {
    await this.until(() => this.ended || this.failed !== null, 'the end of the stream', 60_000)
  }

  hangUp (): void {
    this.req.destroy()
  }
}

async function waitFor (condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(20)
  }
}

async function stackWithTap (t: TestContext, settings: Record<string, string> = {}): Promise<{ stack: Stack, tap: Awaited<ReturnType<typeof startTap>> }> {
  const tap = await startTap(t)
  const stack = await startStack(t, { settings: { upstream: `${tap.url}/backend-api/codex`, ...settings } })
  tap.target = new URL(stack.fake.backendUrl).origin
  // One text delta: the fewest events a turn has, so slow streams stay short.
  stack.fake.backend.streamOptions.deltas = 1
  return { stack, tap }
}

const accountView = async (stack: Stack, id: string): Promise<Record<string, any>> =>
  ((await (await fetch(`${stack.url}/accounts`)).json()) as Array<Record<string, any>>).find((view) => view.id === id)!

test('the first event reaches the client while the upstream is still writing; the bytes pass through untouched and uncompressed', { timeout: 60_000 }, async (t) => {
  const { stack, tap } = await stackWithTap(t)
  const account = await stack.addAccount({ email: 'stream@example.com' })
  stack.fake.backend.script(account.accountId, { kind: 'slow', eventDelayMs: 400 })
  const client = new StreamClient(stack.url, responsesBody('stream please'), { 'accept-encoding': 'gzip, deflate, br, zstd' })

  await client.until(() => client.events.length >= 1, 'the first event')
  const exchange = tap.exchanges[0]!
  assert.match(client.events[0]!, /^event: response\.created\n/)
  assert.equal(exchange.upstreamEnded, false, 'the upstream has not finished when the first event is already at the client')
  assert.ok(!Buffer.concat(exchange.chunks).toString('utf8').includes('response.completed'), 'the last event is not written yet')

  await client.finished()
  assert.equal(client.failed, null)
  assert.equal(exchange.upstreamEnded, true)
  assert.equal(client.response!.statusCode, 200)
  assert.match(client.response!.headers['content-type'] ?? '', /^text\/event-stream/)
  assert.equal(client.response!.headers['content-encoding'], undefined, 'not compressed')
  assert.equal(stack.fake.backend.requests[0]!.headers['accept-encoding'], undefined, 'the upstream is not asked to compress')
  const sent = Buffer.concat(exchange.chunks)
  assert.ok(sent.length > 1000)
  assert.deepEqual(Buffer.concat(client.chunks), sent, 'byte for byte what the upstream wrote')
  assert.match(client.text, /served by stream@example.com: stream please/)
  assert.match(client.text, /event: response\.completed/)
})

test('a client that hangs up mid-stream aborts the upstream request and penalises nobody', { timeout: 60_000 }, async (t) => {
  const { stack, tap } = await stackWithTap(t)
  const account = await stack.addAccount()
  stack.fake.backend.script(account.accountId, { kind: 'slow', eventDelayMs: 30_000 })
  const client = new StreamClient(stack.url, responsesBody())
  await client.until(() => client.events.length >= 1, 'the first event')
  client.hangUp()
  const exchange = tap.exchanges[0]!
  await Promise.race([exchange.done, delay(10_000).then(() => { throw new Error('the upstream request was not aborted') })])
  assert.equal(exchange.abortedByApp, true)
  assert.equal(exchange.upstreamEnded, false)
  const view = await accountView(stack, account.id)
  assert.equal(view.status, 'active')
  assert.equal(view.last_error, null)
})

test('a client that hangs up while the upstream has not answered yet aborts the upstream request', { timeout: 60_000 }, async (t) => {
  const { stack, tap } = await stackWithTap(t)
  const account = await stack.addAccount()
  await stack.addAccount()
  stack.fake.backend.script(account.accountId, { kind: 'hang' })
  const client = new StreamClient(stack.url, responsesBody())
  await waitFor(() => stack.fake.backend.requests.length === 1, 'the upstream to receive the request')
  client.hangUp()
  const exchange = tap.exchanges[0]!
  await Promise.race([exchange.done, delay(10_000).then(() => { throw new Error('the upstream request was not aborted') })])
  assert.equal(exchange.abortedByApp, true)
  await delay(200)
  assert.equal(stack.fake.backend.requests.length, 1, 'no retry and no failover for a client that left')
  const view = await accountView(stack, account.id)
  assert.equal(view.status, 'active')
  assert.equal(view.last_error, null)
})

test('silence shorter than the stream idle limit passes; longer silence ends the stream', { timeout: 90_000 }, async (t) => {
  // Wide margins: on a busy shared machine timers run late by hundreds of milliseconds. The first
  // event is held back at most 500 ms (the hold is for content-free events; see the quota tests).
  const { stack, tap } = await stackWithTap(t, { streamIdleTimeout: '4s', streamHold: '500ms' })
  const account = await stack.addAccount()

  // Ten silent gaps of 1 s, each far shorter than the 4 s limit: nothing may cut the stream.
  stack.fake.backend.script(account.accountId, { kind: 'slow', eventDelayMs: 1000 })
  const patient = new StreamClient(stack.url, responsesBody('slow turn'))
  await patient.finished()
  assert.equal(patient.failed, null)
  assert.match(patient.text, /event: response\.completed/)
  assert.deepEqual(Buffer.concat(patient.chunks), Buffer.concat(tap.exchanges[0]!.chunks))

  // A gap longer than the limit: the proxy gives up on the upstream after the limit.
  stack.fake.backend.script(account.accountId, { kind: 'slow', eventDelayMs: 30_000 })
  const cut = new StreamClient(stack.url, responsesBody('stuck turn'))
  await cut.finished()
  assert.notEqual(cut.failed, null, 'the stream did not end cleanly')
  assert.equal(cut.events.length, 1, 'cut after the first event, long before the second would come')
  const exchange = tap.exchanges[1]!
  await exchange.done
  assert.equal(exchange.abortedByApp, true)
  assert.match((await accountView(stack, account.id)).last_error ?? '', /stream broke: UND_ERR_BODY_TIMEOUT/)
})
