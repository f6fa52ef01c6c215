import { pipeline } from 'node:stream'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Pool, type Dispatcher } from 'undici'
import type { Sent } from '../src/account-pool.js'
import type { Config } from '../src/config.js'
import { needsInspection } from '../src/failover-policy.js'
import { forwardRequestHeaders, forwardResponseHeaders, upstreamPath } from '../src/proxy-headers.js'
import { exhaustedAnswer } from '../src/exhausted-answer.js'
import { bearerGuard } from './bearer-guard.js'

/** Error bodies are read to classify them; more than this is not an error message. */
const MAX_ERROR_BODY = 64 * 1024
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const

export interface ProxyPluginOptions {
  config: Config
}

type UpstreamResponse = Dispatcher.ResponseData

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

  fastify.register(async (scope) => {
    // The body is forwarded as the bytes the client sent (and re-sent on failover): never parsed here.
    // With API keys configured, only clients presenting one may spend the pool (the key is not forwarded).
    scope.addHook('onRequest', bearerGuard(config.apiKeys, 'API key'))
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_request, body, done) => { done(null, body) })
    scope.route({ method: [...METHODS], url: '/v1/*', handler: (request, reply) => proxy(fastify, upstream, basePath, request, reply) })
  })
}

async function proxy (fastify: FastifyInstance, upstream: Pool, basePath: string, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = upstreamPath(request.url, basePath)
  if (path === null) {
    return reply.code(400).send({ error: { type: 'invalid_request_error', message: 'invalid path: it must stay under /v1/ (no "." or ".." segments, encoded slashes or backslashes)' } })
  }
  const started = performance.now()
  const abort = new AbortController()
  const onClientGone = (): void => {
    if (!reply.raw.writableEnded) abort.abort()
  }
  reply.raw.once('close', onClientGone)

  const method = request.method as Dispatcher.HttpMethod
  const clientHeaders = forwardRequestHeaders(request.raw.rawHeaders, request.headers.connection)
  const body = Buffer.isBuffer(request.body) ? request.body : undefined

  const result = await fastify.pool.serve<UpstreamResponse>(async (lease): Promise<Sent<UpstreamResponse>> => {
    const headers = clientHeaders.concat('authorization', `Bearer ${lease.accessToken}`, 'chatgpt-account-id', lease.chatgptAccountId)
    const response = await upstream.request({ path, method, headers, body, signal: abort.signal })
    let errorBody: string | null = null
    if (needsInspection(response.statusCode)) errorBody = await readBounded(response.body)
    return { answer: { status: response.statusCode, headers: response.headers, errorBody }, value: response }
  }, { signal: abort.signal })

  const log = { attempts: result.attempts, skipped: result.skipped.length > 0 ? result.skipped : undefined }
  if (result.kind === 'aborted') {
    request.log.info({ ...log, ms: Math.round(performance.now() - started) }, 'client left before the answer')
    return reply.hijack()
  }
  if (result.kind === 'exhausted') {
    const answer = exhaustedAnswer(result.resetsAt, fastify.pool.now(), fastify.pool.list().length)
    request.log.warn({ ...log, status: answer.status, ms: Math.round(performance.now() - started) }, 'no account can serve')
    reply.code(answer.status).headers(answer.headers).header('x-codex-eq-attempts', String(result.attempts))
    return reply.send(answer.body)
  }

  const { account, value: response } = result
  const responseHeaders = forwardResponseHeaders(response.headers)
  responseHeaders['x-codex-eq-account'] = account.id
  responseHeaders['x-codex-eq-attempts'] = String(result.attempts)
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(response.statusCode, responseHeaders)
  raw.flushHeaders()
  pipeline(response.body, raw, (err) => {
    reply.raw.off('close', onClientGone)
    const entry = { ...log, account: account.id, status: response.statusCode, ms: Math.round(performance.now() - started) }
    if (err !== undefined && err !== null && !abort.signal.aborted) {
      account.lastError = `stream broke: ${(err as NodeJS.ErrnoException).code ?? err.message}`
      account.lastErrorAt = fastify.pool.now()
      request.log.warn({ ...entry, err: account.lastError }, 'upstream stream broke')
    } else {
      request.log.info(entry, abort.signal.aborted ? 'client left during the stream' : 'proxied')
    }
  })
}

async function readBounded (body: UpstreamResponse['body']): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    const buffer = chunk as Buffer
    if (size + buffer.length > MAX_ERROR_BODY) {
      chunks.push(buffer.subarray(0, MAX_ERROR_BODY - size))
      body.destroy()
      break
    }
    chunks.push(buffer)
    size += buffer.length
  }
  return Buffer.concat(chunks).toString('utf8')
}

export default fp(proxyPlugin, { fastify: '5.x', name: 'proxy', dependencies: ['account-pool'] })
