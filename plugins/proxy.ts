import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import type { Config } from '../src/config.js'
import { exhaustedAnswer, isCodexClient, outageAnswer, type AskingClient } from '../src/pool/exhausted-answer.js'
import { forwardRequestHeaders, forwardResponseHeaders, upstreamPath } from '../src/wire/proxy-headers.js'
import { bearerGuard } from './bearer-guard.js'
import { PoolForwarder } from './pool-forward.js'
import { refuseOtherSites } from './site-guard.js'
import { ClientGone } from './upstream-call.js'

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const

declare module 'fastify' {
  interface FastifyInstance {
    /** The one path into the pool, for every client API. */
    forwarder: PoolForwarder
  }
}

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
  const forwarder = new PoolForwarder(fastify.pool, fastify.metrics, config)
  fastify.decorate('forwarder', forwarder)
  fastify.addHook('onClose', async () => {
    await forwarder.close()
  })

  fastify.register(async (scope) => {
    // The body is forwarded as the bytes the client sent (and re-sent on failover): never parsed here.
    // With API keys configured, only clients presenting one may spend the pool (the key is not forwarded).
    scope.addHook('onRequest', refuseOtherSites) // no web page elsewhere spends the quota
    scope.addHook('onRequest', bearerGuard(config.apiKeys, 'API key'))
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_request, body, done) => { done(null, body) })
    scope.route({ method: [...METHODS], url: '/v1/*', handler: (request, reply) => passThrough(fastify, forwarder, request, reply) })
  })
}

/** Passes one `/v1/*` request through to the backend untouched (through the pool). */
export async function passThrough (fastify: FastifyInstance, forwarder: PoolForwarder, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = upstreamPath(request.url, forwarder.basePath)
  if (path === null) {
    return reply.code(400).send({ error: { type: 'invalid_request_error', message: 'invalid path: it must stay under /v1/ (no "." or ".." segments, encoded slashes or backslashes)' } })
  }
  if (isWebSocketUpgrade(request.headers)) {
    // Codex then switches the session to HTTP at once (protocol §5.6); no account is involved.
    return reply.code(426).send({ error: { type: 'invalid_request_error', code: 'websocket_not_supported', message: 'WebSocket is not supported here: send the request over HTTP' } })
  }
  const { pool, metrics } = fastify
  const started = performance.now()
  const gone = new ClientGone()
  const onClientGone = (): void => {
    if (!reply.raw.writableEnded) gone.abort()
  }
  reply.raw.once('close', onClientGone)

  const { result, memory } = await forwarder.forward({
    method: request.method as Dispatcher.HttpMethod,
    path,
    clientHeaders: forwardRequestHeaders(request.raw.rawHeaders, request.headers.connection),
    requestHeaders: request.headers,
    body: Buffer.isBuffer(request.body) ? request.body : undefined,
    signal: gone
  })
  // No attempt follows: let the body go now rather than hold it for as long as the answer streams.
  request.body = undefined

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
    const answer = exhaustedAnswer(result.exhaustion, pool.now(), pool.list(), askingClient(request))
    metrics.served('none', answer.status)
    request.log.warn({ attempts, skipped, status: answer.status, exhaustion: result.exhaustion.kind, ms: ms() }, 'no account can serve')
    reply.code(answer.status).headers(answer.headers).header('x-codex-eq-attempts', String(attempts))
    return reply.send(answer.body)
  }
  if (result.kind === 'upstream_failed' && result.value === null) {
    reply.header('x-codex-eq-upstream-failure', result.failure.fault)
    if (result.outage) reply.header('x-codex-eq-outage', result.failure.fault)
    const answer = outageAnswer(result.failure)
    metrics.served('none', answer.status)
    request.log.warn({ attempts, skipped, status: answer.status, outage: result.outage, fault: result.failure.fault, ms: ms() }, 'upstream failing: its answer passed on')
    reply.code(answer.status).headers(answer.headers).header('x-codex-eq-attempts', String(attempts))
    return reply.send(answer.body)
  }
  const account = result.kind === 'delivered' ? result.account : null
  const upstreamReply = result.value!
  metrics.served(account?.id ?? 'none', upstreamReply.status)
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
  const finish = (err: Error | null): void => {
    raw.off('close', onClientGone)
    const entry = {
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
    // Only an upstream that breaks blames the account; a client that leaves is nobody's fault.
    if (err !== null && account !== null) {
      entry.err = forwarder.streamBroke(account, err)
      request.log.warn(entry, 'upstream stream broke')
    } else {
      request.log.info(entry, gone.aborted || !raw.writableFinished ? 'client left during the stream' : 'proxied')
    }
  }
  const watch = upstreamReply.status === 200 && account !== null ? forwarder.watch(account, memory) : null
  if (upstreamReply.stream === null) {
    if (watch !== null && upstreamReply.buffered !== null) watch(upstreamReply.buffered)
    raw.end(upstreamReply.buffered, () => { finish(null) })
    return
  }
  const stream = upstreamReply.stream
  let wrote = upstreamReply.buffered !== null
  if (upstreamReply.buffered !== null) {
    raw.write(upstreamReply.buffered)
    watch?.(upstreamReply.buffered)
  }
  stream.on('data', (chunk: Buffer) => {
    wrote = true
    watch?.(chunk)
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

/** Who asks, for the pool's own answers: the Codex CLI or not, and the address it reaches us at. */
export function askingClient (request: FastifyRequest): AskingClient {
  return { codex: isCodexClient(request.headers), serverUrl: `${request.protocol}://${request.headers.host ?? '127.0.0.1'}` }
}

function isWebSocketUpgrade (headers: FastifyRequest['headers']): boolean {
  const upgrade = headers.upgrade
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket'
}

export default fp(proxyPlugin, { fastify: '5.x', name: 'proxy', dependencies: ['account-pool', 'metrics'] })
