import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ChildLoggerOptions, Logger } from 'pino'
import type { Dispatcher } from 'undici'
import { exhaustedAlert } from '../src/alerts/pool-alerts.js'
import type { Config } from '../src/config.js'
import { NO_KEY } from '../src/pool/client-keys.js'
import { keyRefusal } from '../src/pool/key-answer.js'
import { exhaustedAnswer, isCodexClient, outageAnswer, type AskingClient } from '../src/pool/exhausted-answer.js'
import type { CompletedUsage } from '../src/wire/usage-watch.js'
import { poolUsage } from '../src/pool/pool-usage.js'
import { forwardRequestHeaders, forwardResponseHeaders, PROXY_MOUNTS, upstreamPath, USAGE_PATHS } from '../src/wire/proxy-headers.js'
import { streamEnd, type StreamEnd } from '../src/wire/stream-end.js'
import { decodeZstdBody, isZstd, type ZstdBodyError } from '../src/wire/zstd-body.js'
import { clientKeyGuard } from './bearer-guard.js'
import { PoolForwarder } from './pool-forward.js'
import { BodyBudget, declaredLength, readRequestBody } from '../src/wire/body-budget.js'
import { RequestBody } from '../src/wire/request-body.js'
import type { Readable } from 'node:stream'
import { refuseOtherSites } from './site-guard.js'
import { ClientGone } from './upstream-call.js'

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const

declare module 'fastify' {
  interface FastifyInstance {
    /** The one path into the pool, for every client API. */
    forwarder: PoolForwarder
    /** The request bytes held for re-sending, across HTTP bodies and WebSocket frames (--max-buffered). */
    bodyBudget: BodyBudget
  }
  interface FastifyRequest {
    /** The bytes of this request's body counted against the budget and not given back yet. */
    heldBodyBytes: number
  }
}

export interface ProxyPluginOptions {
  config: Config
}

/**
 * `/v1/*` and `/backend-api/codex/*` → `{upstream}/*`, with the pool's failover ladder around each request.
 *
 * This calls undici directly rather than through @fastify/reply-from: the ladder needs a fresh
 * credential per attempt and a verdict on status and error body *before* anything touches the
 * reply, while reply-from copies the upstream status and headers onto the reply before its
 * onResponse hook runs, repeats only the same target on retry, and cannot abort a request whose
 * client left before the upstream answered.
 */
async function proxyPlugin (fastify: FastifyInstance, opts: ProxyPluginOptions): Promise<void> {
  const { config } = opts
  const forwarder = new PoolForwarder(fastify.pool, fastify.metrics, fastify.ledger, config, fastify.egress)
  fastify.pool.shareConversations(forwarder.memory)
  fastify.decorate('forwarder', forwarder)
  answerLogs.set(fastify, answerLog(fastify.log))
  fastify.addHook('onClose', async () => {
    await forwarder.close()
  })
  const budget = new BodyBudget(config.maxBufferedBytes)
  fastify.decorate('bodyBudget', budget)
  fastify.decorateRequest('heldBodyBytes', 0)

  fastify.register(async (scope) => {
    // The body is forwarded as the bytes the client sent (and re-sent on failover): never parsed here.
    // With client keys, only clients presenting one may spend the pool (the key is not forwarded).
    scope.addHook('onRequest', refuseOtherSites) // no web page elsewhere spends the quota
    scope.addHook('onRequest', clientKeyGuard(fastify.clientKeys))
    scope.addHook('onRequest', budget.onRequest) // bodies held for failover stay within --max-buffered
    scope.addHook('onResponse', budget.onResponse)
    scope.removeAllContentTypeParsers()
    const readBody = async (request: FastifyRequest, payload: Readable): Promise<RequestBody> => {
      const declared = declaredLength(request)
      // A declared length was reserved up front (budget.onRequest); a body of unknown length is counted as it comes.
      const body = await readRequestBody(payload, declared, config.bodyLimit, declared !== null ? undefined : { countChunk: (bytes) => budget.countChunk(request, bytes) })
      if (!isZstd(request.headers['content-encoding'])) return body
      try {
        return RequestBody.of(await decodeZstdBody(body.whole(), config.bodyLimit))
      } catch (err) {
        const { reason, message } = err as ZstdBodyError
        throw Object.assign(new Error(message), { statusCode: reason === 'too_large' ? 413 : 400 })
      }
    }
    // Fastify remembers which parser serves a content type only when one is registered for it: the
    // catch-all alone makes it parse every request's Content-Type (about 2 µs). Codex sends JSON.
    scope.addContentTypeParser('application/json', readBody)
    scope.addContentTypeParser('*', readBody)
    for (const mount of PROXY_MOUNTS) {
      scope.route({ method: [...METHODS], url: `${mount}/*`, handler: (request, reply) => passThrough(fastify, forwarder, request, reply, budget) })
    }
    // Codex's `/status` asks here when its `chatgpt_base_url` points at the pool: it gets the pool's quota.
    for (const url of USAGE_PATHS) scope.get(url, async () => poolUsage(fastify.pool.list(), fastify.pool.now()))
  })
}

/**
 * The logger of the line each delivered answer gets: without the redaction paths, which cost about
 * 5 µs a line (their wildcards walk every field) and which this line's fields (names, ids, counts,
 * statuses, an error's text) never match.
 */
function answerLog (log: FastifyBaseLogger): FastifyBaseLogger {
  return typeof (log as Logger).isLevelEnabled === 'function' ? log.child({}, { redact: { paths: [] } } as ChildLoggerOptions) : log
}
const answerLogs = new WeakMap<FastifyInstance, FastifyBaseLogger>()

/** Passes one request through to the backend untouched (through the pool); `budget` counts its body. */
export async function passThrough (fastify: FastifyInstance, forwarder: PoolForwarder, request: FastifyRequest, reply: FastifyReply, budget?: BodyBudget): Promise<void> {
  const path = upstreamPath(request.url, forwarder.basePath)
  if (path === null) {
    return reply.code(400).send({ error: { type: 'invalid_request_error', message: `invalid path: it must stay under ${PROXY_MOUNTS.join('/ or ')}/ (no "." or ".." segments, encoded slashes or backslashes)` } })
  }
  if (isWebSocketUpgrade(request.headers)) {
    // Codex then switches the session to HTTP at once (protocol §5.6); no account is involved.
    return reply.code(426).send({ error: { type: 'invalid_request_error', code: 'websocket_not_supported', message: 'WebSocket is not supported here: send the request over HTTP' } })
  }
  const { pool, metrics, requestHistory } = fastify
  const started = performance.now()
  const ms = (): number => Math.round(performance.now() - started)
  const key = request.clientKey
  const keyName = key?.name ?? NO_KEY
  /** The request in the dashboard's list once it is answered (the model only as the answer names it). */
  const remember = (status: number, attempts: number, account: string | null, usage: CompletedUsage | null): void => {
    requestHistory.answered({ at: pool.now(), key: keyName, account, status, attempts, usage, ms: ms() })
  }
  if (key !== null) {
    // A key past its limit or expiry is answered here, before any account is involved.
    const verdict = fastify.clientKeys.verdict(key)
    if (verdict.kind !== 'ok') {
      const answer = keyRefusal(key, verdict, pool.now())
      metrics.served('none', answer.status, keyName)
      remember(answer.status, 0, null, null)
      request.log.info({ key: key.id, refused: verdict.kind }, 'client key refused')
      return reply.code(answer.status).headers(answer.headers).send(answer.body)
    }
  }
  const gone = new ClientGone()
  const onClientGone = (): void => {
    if (!reply.raw.writableEnded) gone.abort()
  }
  reply.raw.once('close', onClientGone)

  const { result, memory } = await forwarder.forward({
    method: request.method as Dispatcher.HttpMethod,
    path,
    clientHeaders: forwardRequestHeaders(request.raw.rawHeaders, request.headers.connection, isZstd(request.headers['content-encoding'])),
    requestHeaders: request.headers,
    body: request.body instanceof RequestBody ? request.body : undefined,
    signal: gone
  })
  // No attempt follows: let the body go now rather than hold it for as long as the answer streams.
  request.body = undefined
  budget?.release(request)

  const { attempts } = result
  const skipped = result.skipped.length > 0 ? result.skipped : undefined
  // Log fields are written out, not spread: in V8 11 `{ ...fields, more }` costs microseconds a call.
  if (result.kind === 'aborted') {
    request.log.info({ attempts, skipped, ms: ms() }, 'client left before the answer')
    return reply.hijack()
  }
  const skippedHeader = skipped === undefined ? undefined : skipped.map((skip) => `${skip.account}=${skip.cause}`).join(',')
  if (skippedHeader !== undefined) reply.header('x-codex-eq-skipped', skippedHeader)
  if (result.kind === 'exhausted') {
    const answer = exhaustedAnswer(result.exhaustion, pool.now(), pool.list(), askingClient(request))
    metrics.served('none', answer.status, keyName)
    fastify.alerts.emit(exhaustedAlert(result.exhaustion))
    remember(answer.status, attempts, null, null)
    request.log.warn({ attempts, skipped, status: answer.status, exhaustion: result.exhaustion.kind, ms: ms() }, 'no account can serve')
    reply.code(answer.status).headers(answer.headers).header('x-codex-eq-attempts', String(attempts))
    return reply.send(answer.body)
  }
  if (result.kind === 'upstream_failed' && result.value === null) {
    reply.header('x-codex-eq-upstream-failure', result.failure.fault)
    if (result.outage) reply.header('x-codex-eq-outage', result.failure.fault)
    const answer = outageAnswer(result.failure)
    metrics.served('none', answer.status, keyName)
    remember(answer.status, attempts, null, null)
    request.log.warn({ attempts, skipped, status: answer.status, outage: result.outage, fault: result.failure.fault, ms: ms() }, 'upstream failing: its answer passed on')
    reply.code(answer.status).headers(answer.headers).header('x-codex-eq-attempts', String(attempts))
    return reply.send(answer.body)
  }
  const account = result.kind === 'delivered' ? result.account : null
  const upstreamReply = result.value!
  metrics.served(account?.id ?? 'none', upstreamReply.status, keyName)
  let usage: CompletedUsage | null = null
  const responseHeaders = forwardResponseHeaders(upstreamReply.headers)
  if (skippedHeader !== undefined) responseHeaders['x-codex-eq-skipped'] = skippedHeader
  if (result.kind === 'upstream_failed') {
    responseHeaders['x-codex-eq-upstream-failure'] = result.failure.fault
    if (result.outage) responseHeaders['x-codex-eq-outage'] = result.failure.fault
  }
  if (account !== null) responseHeaders['x-codex-eq-account'] = account.id
  responseHeaders['x-codex-eq-attempts'] = String(attempts)
  if (memory.blobsDropped > 0) responseHeaders['x-codex-eq-blobs-dropped'] = String(memory.blobsDropped)
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(upstreamReply.status, responseHeaders)
  const finish = (end: StreamEnd, err: Error | null): void => {
    raw.off('close', onClientGone)
    remember(upstreamReply.status, attempts, account?.id ?? null, usage)
    const entry = {
      reqId: request.id,
      key: key?.name,
      attempts,
      skipped,
      account: account?.id,
      email: account?.email ?? undefined,
      status: upstreamReply.status,
      outage: result.kind === 'upstream_failed' ? result.outage : undefined,
      blobsDropped: memory.blobsDropped > 0 ? memory.blobsDropped : undefined,
      turnStateDropped: memory.turnStateDropped ? true : undefined,
      ms: ms(),
      err: undefined as string | undefined
    }
    const log = answerLogs.get(fastify) ?? request.log
    if (end === 'upstream_broke' && account !== null) {
      entry.err = forwarder.streamBroke(account, err!)
      log.warn(entry, 'upstream stream broke')
    } else {
      log.info(entry, end === 'client_left' || gone.aborted ? 'client left during the stream' : 'proxied')
    }
  }
  const watch = upstreamReply.status === 200 && account !== null ? forwarder.watch(account, memory, keyName, (seen) => { usage = seen }) : null
  // The bytes leave first and are watched after: what the watches learn (usage, blob makers, a
  // late failure) is taken in the same turn of the event loop, so nothing can read it sooner, and
  // the client gets its answer without waiting for them.
  if (upstreamReply.stream === null) {
    raw.end(upstreamReply.buffered, () => { finish('complete', null) })
    if (watch !== null && upstreamReply.buffered !== null) watch(upstreamReply.buffered)
    return
  }
  const stream = upstreamReply.stream
  let wrote = upstreamReply.buffered !== null
  if (upstreamReply.buffered !== null) {
    raw.write(upstreamReply.buffered)
    watch?.(upstreamReply.buffered)
  } else {
    // The headers leave with the first event, in one write; an upstream still silent once this turn
    // of the event loop is over gets them sent alone, so the client knows its turn has started.
    setImmediate(() => {
      if (!wrote && !raw.writableEnded && !raw.destroyed) raw.flushHeaders()
    })
  }
  // One 'data' listener that watches and writes, rather than pipe() beside a watching listener:
  // pipe() adds five listeners and a cleanup per request. Backpressure as pipe() does it: pause
  // until the client's socket drains. The response's 'close' (emitted however it ends) rather
  // than pipeline() or finished(): one listener and no AbortController per request. Either side
  // ending early ends the other.
  metrics.streamOpened()
  let upstreamError: Error | null = null
  const resume = (): void => { stream.resume() }
  stream.on('data', (chunk: Buffer) => {
    wrote = true
    const flowing = raw.write(chunk)
    watch?.(chunk)
    if (!flowing) {
      stream.pause()
      raw.once('drain', resume)
    }
  })
  stream.once('end', () => { raw.end() })
  stream.once('error', (err) => {
    upstreamError = err
    raw.off('close', onClientGone) // the upstream broke: the client did not leave
    raw.destroy()
  })
  stream.resume() // held paused until now (see stream-hold.ts)
  raw.once('close', () => {
    if (!stream.destroyed) stream.destroy()
    metrics.streamClosed()
    finish(streamEnd(upstreamError, raw.writableFinished), upstreamError)
  })
}

/** Who asks, for the pool's own answers: the Codex CLI or not, and the address it reaches us at. */
export function askingClient (request: FastifyRequest): AskingClient {
  return { codex: isCodexClient(request.headers), serverUrl: `${request.protocol}://${request.headers.host ?? '127.0.0.1'}` }
}

function isWebSocketUpgrade (headers: FastifyRequest['headers']): boolean {
  const upgrade = headers.upgrade
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket'
}

export default fp(proxyPlugin, { fastify: '5.x', name: 'proxy', dependencies: ['account-pool', 'metrics', 'alerts', 'usage-ledger', 'client-keys'] })
