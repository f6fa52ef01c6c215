import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Pool, type Dispatcher } from 'undici'
import type { Sent } from '../src/account-pool.js'
import type { Config } from '../src/config.js'
import { needsInspection } from '../src/failover-policy.js'
import { forwardRequestHeaders, forwardResponseHeaders, upstreamPath } from '../src/proxy-headers.js'
import { exhaustedAnswer } from '../src/exhausted-answer.js'
import { ConversationAffinity, carriesEncryptedReasoning, conversationKey, withoutReasoning } from '../src/conversation-affinity.js'
import type { PoolMetrics } from '../src/metrics.js'
import { StreamFailureWatch } from '../src/stream-failure.js'
import { BodyBudget, declaredLength, readWholeBody } from '../src/body-budget.js'
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
  const basePath = base.pathname.replace(/\/+$/, '')
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
  const affinity = new ConversationAffinity()
  const budget = new BodyBudget(config.maxBufferedBytes)

  fastify.register(async (scope) => {
    // The body is forwarded as the bytes the client sent (and re-sent on failover): never parsed here.
    // With API keys configured, only clients presenting one may spend the pool (the key is not forwarded).
    scope.addHook('onRequest', refuseOtherSites) // no web page elsewhere spends the quota
    scope.addHook('onRequest', bearerGuard(config.apiKeys, 'API key'))
    scope.addHook('preParsing', budget.preParsing) // bodies held for failover stay within --max-buffered
    scope.addHook('onResponse', budget.onResponse)
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', async (request: FastifyRequest, payload: Readable) => await readWholeBody(payload, declaredLength(request), config.bodyLimit))
    scope.route({ method: [...METHODS], url: '/v1/*', handler: (request, reply) => proxy(fastify, upstream, basePath, affinity, budget, request, reply) })
  })
}

async function proxy (fastify: FastifyInstance, upstream: Pool, basePath: string, affinity: ConversationAffinity, budget: BodyBudget, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = upstreamPath(request.url, basePath)
  if (path === null) {
    return reply.code(400).send({ error: { type: 'invalid_request_error', message: 'invalid path: it must stay under /v1/ (no "." or ".." segments, encoded slashes or backslashes)' } })
  }
  const { pool, metrics } = fastify
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
  const replaysReasoning = carriesEncryptedReasoning(body)
  let stripped: Buffer | null | undefined

  /** The body without old reasoning, computed once; null when there is nothing to drop. */
  const strippedBody = (): Buffer | null => {
    if (stripped === undefined) stripped = body === undefined ? null : withoutReasoning(body)
    return stripped
  }

  const result = await pool.serve<UpstreamReply>(async (lease): Promise<Sent<UpstreamReply>> => {
    const headers = clientHeaders.concat('authorization', `Bearer ${lease.accessToken}`, 'chatgpt-account-id', lease.chatgptAccountId)
    // A conversation moving to another account cannot take its encrypted reasoning along.
    const moving = owner !== undefined && owner !== lease.account.id && replaysReasoning
    let payload = moving ? strippedBody() ?? body : body
    let answer = await send(upstream, metrics, { path, method, headers, body: payload, signal: gone }, replaysReasoning)
    // Reasoning from an account we did not see (e.g. before a restart) is refused the same way: drop it and send once more.
    if (answer.status === 400 && payload === body && replaysReasoning && /invalid_encrypted_content/.test(answer.errorBody ?? '')) {
      const retry = strippedBody()
      if (retry !== null) {
        payload = retry
        answer = await send(upstream, metrics, { path, method, headers, body: payload, signal: gone }, false)
      }
    }
    return { answer: { status: answer.status, headers: answer.headers, errorBody: answer.errorBody }, value: answer }
  }, { signal: gone, prefer: owner })
  // No attempt follows: let the body go now rather than hold it for as long as the answer streams.
  body = stripped = request.body = undefined
  budget.release(request)

  const { attempts } = result
  const skipped = result.skipped.length > 0 ? result.skipped : undefined
  // Log fields are written out, not spread: in V8 11 `{ ...fields, more }` costs microseconds a call.
  if (result.kind === 'aborted') {
    request.log.info({ attempts, skipped, ms: Math.round(performance.now() - started) }, 'client left before the answer')
    return reply.hijack()
  }
  if (result.kind === 'exhausted') {
    const answer = exhaustedAnswer(result.resetsAt, pool.now(), pool.list())
    metrics.served('none', answer.status)
    request.log.warn({ attempts, skipped, status: answer.status, ms: Math.round(performance.now() - started) }, 'no account can serve')
    reply.code(answer.status).headers(answer.headers).header('x-codex-eq-attempts', String(result.attempts))
    return reply.send(answer.body)
  }

  const { account, value: upstreamReply } = result
  if (conversation !== null) affinity.set(conversation, account.id)
  metrics.served(account.id, upstreamReply.status)
  const responseHeaders = forwardResponseHeaders(upstreamReply.headers)
  responseHeaders['x-codex-eq-account'] = account.id
  responseHeaders['x-codex-eq-attempts'] = String(result.attempts)
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(upstreamReply.status, responseHeaders)
  const finish = (err: Error | null | undefined): void => {
    raw.off('close', onClientGone)
    const entry = { attempts, skipped, account: account.id, status: upstreamReply.status, ms: Math.round(performance.now() - started), err: undefined as string | undefined }
    if (err !== undefined && err !== null && !gone.aborted) {
      account.lastError = `stream broke: ${(err as NodeJS.ErrnoException).code ?? err.message}`
      account.lastErrorAt = pool.now()
      entry.err = account.lastError
      request.log.warn(entry, 'upstream stream broke')
    } else {
      request.log.info(entry, gone.aborted ? 'client left during the stream' : 'proxied')
    }
  }
  if (upstreamReply.stream === null) {
    raw.end(upstreamReply.buffered, () => { finish(null) })
    return
  }
  const stream = upstreamReply.stream
  let wrote = upstreamReply.buffered !== null
  if (upstreamReply.buffered !== null) raw.write(upstreamReply.buffered)
  const watch = upstreamReply.status === 200 ? new StreamFailureWatch((error) => { pool.reportStreamFailure(account, error) }) : null
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
    finish(upstreamError ?? (raw.writableFinished ? null : new Error('the answer was cut short')))
  })
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
interface UpstreamReply {
  status: number
  headers: Record<string, string | string[] | undefined>
  stream: Readable | null
  buffered: Buffer | null
  errorBody: string | null
}

async function send (upstream: Pool, metrics: PoolMetrics, o: { path: string, method: Dispatcher.HttpMethod, headers: string[], body: Buffer | undefined, signal: ClientGone }, inspect400: boolean): Promise<UpstreamReply> {
  const sentAt = performance.now()
  const response = await upstream.request(o.body === undefined || o.body.length === 0 ? o : { ...o, headers: o.headers.concat('content-length', String(o.body.length)), body: releasedOnceSent(o.body) })
  metrics.upstreamAnswered((performance.now() - sentAt) / 1000)
  const { statusCode: status, headers, body } = response
  const blames = needsInspection(status)
  if (!blames && !(status === 400 && inspect400)) return { status, headers, stream: body, buffered: null, errorBody: null }
  const { prefix, complete } = await readPrefix(body, MAX_ERROR_BODY)
  // An answer that may blame the account is never delivered: drop the rest. A 400 may still be the
  // client's answer: whatever was not read yet follows the prefix.
  if (!complete && blames) body.destroy()
  return { status, headers, stream: complete || blames ? null : body, buffered: prefix, errorBody: prefix.toString('utf8') }
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
