import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Pool, type Dispatcher } from 'undici'
import type { Account } from '../src/store/records.js'
import type { Sent } from '../src/pool/account-pool.js'
import { BoundedMap } from '../src/pool/bounded-map.js'
import type { Config } from '../src/config.js'
import { ConversationAffinity, conversationKey, requestModel } from '../src/pool/conversation-affinity.js'
import { BlobLearner, BlobOwners, blobsIn, carriesBlobs, withoutBlobs } from '../src/pool/encrypted-blobs.js'
import { exhaustedAnswer, isCodexClient, outageAnswer } from '../src/pool/exhausted-answer.js'
import { needsInspection, type UpstreamAnswer } from '../src/pool/failover-policy.js'
import type { PoolMetrics } from '../src/metrics.js'
import { forwardRequestHeaders, forwardResponseHeaders, upstreamPath } from '../src/wire/proxy-headers.js'
import { StreamFailureWatch } from '../src/wire/stream-failure.js'
import { holdPrelude } from '../src/wire/stream-hold.js'
import { bearerGuard } from './bearer-guard.js'
import { refuseOtherSites } from './site-guard.js'

/** Error bodies are read to classify them; more than this is not an error message. */
const MAX_ERROR_BODY = 64 * 1024
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const

export interface ProxyPluginOptions {
  config: Config
}

/**
 * `/v1/*` → `{upstream}/*`, with the pool's failover ladder around each request.
 *
 * This calls undici directly rather than through @fastify/reply-from: the ladder needs a fresh
 * credential per attempt and a verdict on status and error body *before* anything touches the
 * reply, while reply-from copies the upstream status and headers onto the reply before its
 * onResponse hook runs, repeats only the same target on retry, and cannot abort a request whose
 * client left before the upstream answered.
 */
async function proxyPlugin (fastify: FastifyInstance, opts: ProxyPluginOptions): Promise<void> {
  const { config } = opts
  const base = new URL(config.upstream)
  const upstream = new Pool(base.origin, {
    connect: { rejectUnauthorized: true },
    headersTimeout: config.upstreamHeadersTimeoutMs,
    // A reasoning turn can be silent for many minutes: only a long silence ends the stream.
    bodyTimeout: config.streamIdleTimeoutMs,
    keepAliveTimeout: 60_000
  })
  fastify.addHook('onClose', async () => {
    await upstream.destroy()
  })
  const context: ProxyContext = {
    upstream,
    basePath: base.pathname.replace(/\/+$/, ''),
    holdMs: config.streamHoldMs,
    affinity: new ConversationAffinity(),
    blobOwners: new BlobOwners(),
    turnStates: new BoundedMap(10_000)
  }

  fastify.register(async (scope) => {
    // The body is forwarded as the bytes the client sent (and re-sent on failover): never parsed here.
    // With API keys configured, only clients presenting one may spend the pool (the key is not forwarded).
    scope.addHook('onRequest', refuseOtherSites) // no web page elsewhere spends the quota
    scope.addHook('onRequest', bearerGuard(config.apiKeys, 'API key'))
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_request, body, done) => { done(null, body) })
    scope.route({ method: [...METHODS], url: '/v1/*', handler: (request, reply) => proxy(fastify, context, request, reply) })
  })
}

/** What the proxy keeps across requests: the upstream connections and what it learned of conversations. */
interface ProxyContext {
  upstream: Pool
  basePath: string
  holdMs: number
  affinity: ConversationAffinity
  /** Which account made each encrypted blob seen in an answer. */
  blobOwners: BlobOwners
  /** Which account issued each `x-codex-turn-state`. */
  turnStates: BoundedMap<string>
}

const TURN_STATE = 'x-codex-turn-state'

async function proxy (fastify: FastifyInstance, context: ProxyContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = upstreamPath(request.url, context.basePath)
  if (path === null) {
    return reply.code(400).send({ error: { type: 'invalid_request_error', message: 'invalid path: it must stay under /v1/ (no "." or ".." segments, encoded slashes or backslashes)' } })
  }
  if (isWebSocketUpgrade(request.headers)) {
    // Codex then switches the session to HTTP at once (protocol §5.6); no account is involved.
    return reply.code(426).send({ error: { type: 'invalid_request_error', code: 'websocket_not_supported', message: 'WebSocket is not supported here: send the request over HTTP' } })
  }
  const { pool, metrics } = fastify
  const { affinity, blobOwners, turnStates } = context
  const started = performance.now()
  const gone = new ClientGone()
  const onClientGone = (): void => {
    if (!reply.raw.writableEnded) gone.abort()
  }
  reply.raw.once('close', onClientGone)

  const method = request.method as Dispatcher.HttpMethod
  const clientHeaders = forwardRequestHeaders(request.raw.rawHeaders, request.headers.connection)
  let body = Buffer.isBuffer(request.body) ? request.body : undefined
  const conversation = conversationKey(request.headers, body)
  const owner = conversation === null ? undefined : affinity.get(conversation)
  const turnState = request.headers[TURN_STATE]
  const turnOwner = typeof turnState === 'string' ? turnStates.peek(turnState) : undefined
  const carries = carriesBlobs(body)
  let fingerprints: string[] | undefined
  const notes = { blobsDropped: 0, turnStateDropped: false }

  /**
   * The body as this account may receive it: blobs other accounts made are dropped. Only a
   * conversation that moves (or moved before, or is unknown) is looked at; the rest is a byte scan.
   */
  const bodyFor = (account: string): Buffer | undefined => {
    notes.blobsDropped = 0
    if (!carries || body === undefined || (owner === account && !affinity.hasMoved(conversation!))) return body
    if (blobOwners.size === 0) return body
    fingerprints ??= blobsIn(body)
    if (!blobOwners.anyForeign(fingerprints, account)) return body
    const rewritten = withoutBlobs(body, (fingerprint) => { const maker = blobOwners.peek(fingerprint); return maker !== undefined && maker !== account })
    if (rewritten === null) return body
    notes.blobsDropped = rewritten.dropped
    return rewritten.body
  }

  const result = await pool.serve<UpstreamReply>(async (lease): Promise<Sent<UpstreamReply>> => {
    const account = lease.account.id
    // A turn's state belongs to the account's upstream session: never shown to another account.
    notes.turnStateDropped = turnOwner !== undefined && turnOwner !== account
    const headers = (notes.turnStateDropped ? clientHeaders.filter((_, i) => clientHeaders[i - (i % 2)] !== TURN_STATE) : clientHeaders)
      .concat('authorization', `Bearer ${lease.accessToken}`, 'chatgpt-account-id', lease.chatgptAccountId)
    let payload = bodyFor(account)
    const attempt = { path, method, headers, body: payload, signal: gone, holdMs: context.holdMs }
    let answer = await send(context.upstream, metrics, attempt, carries)
    // Blobs never seen (e.g. made before a restart) are refused the same way: drop every blob not
    // known as this account's own and send once more.
    if (answer.status === 400 && carries && body !== undefined && /invalid_encrypted_content/.test(answer.errorBody ?? '')) {
      const rewritten = withoutBlobs(body, (fingerprint) => blobOwners.peek(fingerprint) !== account)
      if (rewritten !== null && rewritten.dropped > notes.blobsDropped) {
        answer.stream?.destroy()
        payload = rewritten.body
        notes.blobsDropped = rewritten.dropped
        answer = await send(context.upstream, metrics, { ...attempt, body: payload }, false)
      }
    }
    return { answer, value: answer }
  }, { signal: gone, prefer: owner ?? turnOwner, model: () => requestModel(body) })
  // No attempt follows: let the body go now rather than hold it for as long as the answer streams.
  body = request.body = undefined

  const { attempts } = result
  const skipped = result.skipped.length > 0 ? result.skipped : undefined
  const ms = (): number => Math.round(performance.now() - started)
  // Log fields are written out, not spread: in V8 11 `{ ...fields, more }` costs microseconds a call.
  if (result.kind === 'aborted') {
    request.log.info({ attempts, skipped, ms: ms() }, 'client left before the answer')
    return reply.hijack()
  }
  const skippedHeader = skipped === undefined ? undefined : skipped.map((skip) => `${skip.account}=${skip.cause}`).join(',')
  if (skippedHeader !== undefined) reply.header('x-codex-eq-skipped', skippedHeader)
  if (result.kind === 'exhausted') {
    const client = { codex: isCodexClient(request.headers), serverUrl: `${request.protocol}://${request.headers.host ?? '127.0.0.1'}` }
    const answer = exhaustedAnswer(result.exhaustion, pool.now(), pool.list(), client)
    metrics.served('none', answer.status)
    request.log.warn({ attempts, skipped, status: answer.status, exhaustion: result.exhaustion.kind, ms: ms() }, 'no account can serve')
    reply.code(answer.status).headers(answer.headers).header('x-codex-eq-attempts', String(attempts))
    return reply.send(answer.body)
  }
  if (result.kind === 'upstream_failed') {
    if (result.value === null) {
      reply.header('x-codex-eq-upstream-failure', result.failure.fault)
      if (result.outage) reply.header('x-codex-eq-outage', result.failure.fault)
      const answer = outageAnswer(result.failure)
      metrics.served('none', answer.status)
      request.log.warn({ attempts, skipped, status: answer.status, outage: result.outage, fault: result.failure.fault, ms: ms() }, 'upstream failing: its answer passed on')
      reply.code(answer.status).headers(answer.headers).header('x-codex-eq-attempts', String(attempts))
      return reply.send(answer.body)
    }
  }
  const account = result.kind === 'delivered' ? result.account : null
  const upstreamReply = result.value!
  if (account !== null) {
    if (conversation !== null) affinity.set(conversation, account.id)
    const issuedTurnState = upstreamReply.headers[TURN_STATE]
    if (typeof issuedTurnState === 'string') turnStates.set(issuedTurnState, account.id)
  }
  metrics.served(account?.id ?? 'none', upstreamReply.status)
  if (notes.blobsDropped > 0) metrics.blobsDropped(notes.blobsDropped)
  const responseHeaders = forwardResponseHeaders(upstreamReply.headers)
  if (skippedHeader !== undefined) responseHeaders['x-codex-eq-skipped'] = skippedHeader
  if (result.kind === 'upstream_failed') {
    responseHeaders['x-codex-eq-upstream-failure'] = result.failure.fault
    if (result.outage) responseHeaders['x-codex-eq-outage'] = result.failure.fault
  }
  if (account !== null) responseHeaders['x-codex-eq-account'] = account.id
  responseHeaders['x-codex-eq-attempts'] = String(attempts)
  if (notes.blobsDropped > 0) responseHeaders['x-codex-eq-blobs-dropped'] = String(notes.blobsDropped)
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(upstreamReply.status, responseHeaders)
  const finish = (err: Error | null): void => {
    raw.off('close', onClientGone)
    const entry = {
      attempts,
      skipped,
      account: account?.id,
      email: account?.email ?? undefined,
      status: upstreamReply.status,
      outage: result.kind === 'upstream_failed' ? result.outage : undefined,
      blobsDropped: notes.blobsDropped > 0 ? notes.blobsDropped : undefined,
      turnStateDropped: notes.turnStateDropped ? true : undefined,
      ms: ms(),
      err: undefined as string | undefined
    }
    // Only an upstream that breaks blames the account; a client that leaves is nobody's fault.
    if (err !== null && account !== null) {
      account.lastError = `stream broke: ${(err as NodeJS.ErrnoException).code ?? err.message}`
      account.lastErrorAt = pool.now()
      entry.err = account.lastError
      request.log.warn(entry, 'upstream stream broke')
    } else {
      request.log.info(entry, gone.aborted || !raw.writableFinished ? 'client left during the stream' : 'proxied')
    }
  }
  if (upstreamReply.stream === null) {
    raw.end(upstreamReply.buffered, () => { finish(null) })
    return
  }
  const stream = upstreamReply.stream
  let wrote = upstreamReply.buffered !== null
  if (upstreamReply.buffered !== null) raw.write(upstreamReply.buffered)
  const watch = upstreamReply.status === 200 && account !== null ? new AnswerWatch(pool, account, blobOwners) : null
  if (watch !== null && upstreamReply.buffered !== null) watch.push(upstreamReply.buffered)
  stream.on('data', (chunk: Buffer) => {
    wrote = true
    watch?.push(chunk)
  })
  // The headers leave with the first event, in one write; an upstream still silent once this turn
  // of the event loop is over gets them sent alone, so the client knows its turn has started.
  setImmediate(() => {
    if (!wrote && !raw.writableEnded && !raw.destroyed) raw.flushHeaders()
  })
  // pipe() and the response's 'close' (emitted however it ends) rather than pipeline() or
  // finished(): the same outcome with one listener and no AbortController per request. Either side
  // ending early ends the other.
  metrics.streamOpened()
  let upstreamError: Error | null = null
  stream.once('error', (err) => {
    upstreamError = err
    raw.off('close', onClientGone) // the upstream broke: the client did not leave
    raw.destroy()
  })
  stream.pipe(raw)
  raw.once('close', () => {
    if (!stream.destroyed) stream.destroy()
    metrics.streamClosed()
    finish(upstreamError)
  })
}

/**
 * What the proxy learns from an answer as it streams by: which account made each encrypted blob,
 * and a `response.failed` after content (too late to fail over; a usage limit in it still rests
 * the account for the next turn).
 */
class AnswerWatch {
  private readonly failures: StreamFailureWatch
  private readonly blobs: BlobLearner

  constructor (pool: FastifyInstance['pool'], account: Account, owners: BlobOwners) {
    this.failures = new StreamFailureWatch((error) => { pool.reportStreamFailure(account, error) })
    this.blobs = new BlobLearner((fingerprint) => { owners.set(fingerprint, account.id) })
  }

  push (chunk: Buffer): void {
    this.failures.push(chunk)
    this.blobs.push(chunk)
  }
}

function isWebSocketUpgrade (headers: FastifyRequest['headers']): boolean {
  const upgrade = headers.upgrade
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket'
}

/**
 * The client left: what undici (which takes any emitter of 'abort') and the pool's ladder watch.
 * Lighter than an AbortController, whose EventTarget costs microseconds on every request.
 */
class ClientGone extends EventEmitter {
  aborted = false

  abort (): void {
    if (this.aborted) return
    this.aborted = true
    this.emit('abort')
  }
}

/**
 * The body as undici gets it: a stream that lets go of the bytes once they are written. A Buffer
 * body stays referenced by undici until the answer's last byte, and an answer can stream for many
 * minutes while Codex bodies grow to megabytes. The length goes in the headers: no chunked upload.
 */
function releasedOnceSent (body: Buffer): Readable {
  let pending: Buffer | null = body
  return new Readable({
    read () {
      if (pending !== null) this.push(pending)
      pending = null
      this.push(null)
    }
  })
}

/** One upstream answer: streamed on, or (error statuses) read, whole or a first part, so it can be judged. */
interface UpstreamReply extends UpstreamAnswer {
  headers: Record<string, string | string[] | undefined>
  stream: Readable | null
  buffered: Buffer | null
}

interface Attempt {
  path: string
  method: Dispatcher.HttpMethod
  headers: string[]
  body: Buffer | undefined
  signal: ClientGone
  /** How long a stream's content-free first events may be held back (0: not at all). */
  holdMs: number
}

async function send (upstream: Pool, metrics: PoolMetrics, o: Attempt, inspect400: boolean): Promise<UpstreamReply> {
  const sentAt = performance.now()
  const request = { path: o.path, method: o.method, headers: o.headers, signal: o.signal }
  const response = await upstream.request(o.body === undefined || o.body.length === 0 ? request : { ...request, headers: o.headers.concat('content-length', String(o.body.length)), body: releasedOnceSent(o.body) })
  metrics.upstreamAnswered((performance.now() - sentAt) / 1000)
  const { statusCode: status, headers, body } = response
  const blames = needsInspection(status)
  if (!blames && !(status === 400 && inspect400)) {
    if (status !== 200 || o.holdMs === 0 || !isEventStream(headers)) return { status, headers, stream: body, buffered: null, errorBody: null }
    const held = await holdPrelude(body, o.holdMs)
    const buffered = held.chunks.length === 0 ? null : held.chunks.length === 1 ? held.chunks[0]! : Buffer.concat(held.chunks)
    return { status, headers, stream: held.ended ? null : body, buffered, errorBody: null, streamError: held.failure }
  }
  const { prefix, complete } = await readPrefix(body, MAX_ERROR_BODY)
  // An answer that may blame the account is never delivered: drop the rest. A 400 may still be the
  // client's answer: whatever was not read yet follows the prefix.
  if (!complete && blames) body.destroy()
  return { status, headers, stream: complete || blames ? null : body, buffered: prefix, errorBody: prefix.toString('utf8') }
}

function isEventStream (headers: Record<string, string | string[] | undefined>): boolean {
  const type = headers['content-type']
  return typeof type === 'string' && type.includes('text/event-stream')
}

/** Reads up to about `limit` bytes, leaving the rest unread (paused) in the stream. */
function readPrefix (body: Readable, limit: number): Promise<{ prefix: Buffer, complete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (complete: boolean): void => {
      body.off('data', onData).off('end', onEnd).off('error', onError)
      resolve({ prefix: Buffer.concat(chunks), complete })
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      size += chunk.length
      if (size >= limit) {
        body.pause()
        done(false)
      }
    }
    const onEnd = (): void => { done(true) }
    const onError = (err: Error): void => {
      body.off('data', onData).off('end', onEnd).off('error', onError)
      reject(err)
    }
    body.on('data', onData).on('end', onEnd).on('error', onError)
  })
}

export default fp(proxyPlugin, { fastify: '5.x', name: 'proxy', dependencies: ['account-pool', 'metrics'] })
