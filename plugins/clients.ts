import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import type { Config } from '../src/config.js'
import { exhaustedAnswer, outageAnswer, type PoolAnswer } from '../src/pool/exhausted-answer.js'
import { AnswerCollector, answerSink, CHAT_COMPLETIONS, clientJson, MESSAGES, type ClientApi, type Translated } from '../src/wire/clients/client-apis.js'
import { clientError, failureStatus, upstreamMessage, type ClientKind } from '../src/wire/clients/client-errors.js'
import { estimateTokens, messagesToResponses } from '../src/wire/clients/messages-request.js'
import { resolveModel } from '../src/wire/clients/model-aliases.js'
import { anthropicModel, anthropicModelList, modelIds, openaiModel, openaiModelList } from '../src/wire/clients/model-list.js'
import { RefusedInput } from '../src/wire/clients/responses-request.js'
import { ResponsesReader, type AnswerNews } from '../src/wire/clients/responses-reader.js'
import { NO_KEY } from '../src/pool/client-keys.js'
import { declaredLength, readRequestBody } from '../src/wire/body-budget.js'
import { RequestBody } from '../src/wire/request-body.js'
import { keyRefusal } from '../src/pool/key-answer.js'
import { clientKeyGuard } from './bearer-guard.js'
import { askingClient, passThrough } from './proxy.js'
import { refuseOtherSites } from './site-guard.js'
import type { Account } from '../src/store/records.js'
import type { KnownBody } from '../src/pool/conversation-memory.js'
import { ClientGone, type UpstreamReply } from './upstream-call.js'
import type { CompletedUsage } from '../src/wire/usage-watch.js'

/** The backend's model list is asked for at most this often. */
const MODELS_TTL_MS = 60_000
/** The backend filters its model list by client version: ours is the Codex CLI's that protocol.md describes. */
const MODELS_CLIENT_VERSION = '0.171.0'
const TRANSLATED_HEADERS = ['content-type', 'application/json', 'accept', 'text/event-stream']
const MAX_ERROR_BODY = 64 * 1024
const NO_BODY = new RequestBody([])

export interface ClientsPluginOptions {
  config: Config
}

/** Anthropic clients: `/v1/messages…`, and anything sent with Anthropic's version header. */
function kindOf (request: FastifyRequest): ClientKind {
  return request.url.startsWith('/v1/messages') || request.headers['anthropic-version'] !== undefined ? 'anthropic' : 'openai'
}

/**
 * The translated client APIs: OpenAI Chat Completions and Anthropic Messages, each turned into a
 * Codex Responses request that takes the same path into the pool as `/v1/responses` (the
 * forwarder), and whose answer is turned back into the client's own events.
 */
async function clientsPlugin (fastify: FastifyInstance, opts: ClientsPluginOptions): Promise<void> {
  const { config } = opts
  let models: { ids: string[], at: number } | null = null

  fastify.register(async (scope) => {
    scope.addHook('onRequest', refuseOtherSites)
    scope.addHook('onRequest', clientKeyGuard(fastify.clientKeys, { apiKeyHeader: true, refusal: (request, message) => clientError(kindOf(request), 401, message) }))
    scope.setErrorHandler((error: { statusCode?: number, message: string }, request, reply) => {
      const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
      if (status === 500) request.log.error({ err: { message: error.message } }, 'translated request failed')
      return reply.code(status).send(clientError(kindOf(request), status, status === 500 ? 'internal error (see the server log)' : error.message))
    })
    // Not Fastify's parser with its prototype-poisoning scan (two more passes over bodies of
    // megabytes): the body stays the client's bytes, and each client API reads it (client-apis.ts),
    // its long strings sent on in the backend's body as they are (uncopied). The body is read as
    // the pass-through reads it (a body that came in one chunk is not copied).
    scope.removeContentTypeParser('application/json')
    scope.addContentTypeParser('application/json', async (request: FastifyRequest, payload: Readable) => {
      return (await readRequestBody(payload, declaredLength(request), config.bodyLimit, { oneBuffer: true })).whole()
    })
    const route = { bodyLimit: config.bodyLimit }
    scope.post('/v1/chat/completions', route, (request, reply) => translated(fastify, CHAT_COMPLETIONS, request, reply))
    scope.post('/v1/messages', route, (request, reply) => translated(fastify, MESSAGES, request, reply))
    scope.post('/v1/messages/count_tokens', route, async (request, reply) => {
      return reply.send({ input_tokens: estimateTokens(messagesToResponses(clientJson(request.body as Buffer | undefined), config.modelAliases).body) })
    })
    /**
     * The model ids, from the backend's list asked for at most every MODELS_TTL_MS; null once the
     * reply is sent (the pool's or the backend's error, in the client's shape).
     */
    const modelList = async (request: FastifyRequest, reply: FastifyReply): Promise<string[] | null> => {
      if (models !== null && fastify.pool.now() - models.at <= MODELS_TTL_MS) return models.ids
      const kind = kindOf(request)
      const answer = await callPool(fastify, request, 'GET', `/models?client_version=${MODELS_CLIENT_VERSION}`, undefined)
      if (answer.kind === 'aborted') {
        reply.hijack()
        return null
      }
      if (answer.kind === 'error') {
        await reply.code(answer.status).headers(answer.headers).send(clientError(kind, answer.status, answer.message, answer.code))
        return null
      }
      const body = await readBody(answer.reply)
      if (answer.reply.status !== 200) {
        const { message, code } = upstreamMessage(body, answer.reply.status)
        await reply.code(answer.reply.status).send(clientError(kind, answer.reply.status, message, code))
        return null
      }
      models = { ids: modelIds(body, config.modelAliases), at: fastify.pool.now() }
      return models.ids
    }
    // The Codex CLI names its version: it gets the backend's own answer, untouched.
    const fromCodex = (request: FastifyRequest): boolean => (request.query as Record<string, unknown>).client_version !== undefined
    scope.get('/v1/models', async (request, reply) => {
      if (fromCodex(request)) return passThrough(fastify, fastify.forwarder, request, reply)
      const ids = await modelList(request, reply)
      if (ids === null) return reply
      return reply.send(kindOf(request) === 'anthropic' ? anthropicModelList(ids) : openaiModelList(ids))
    })
    scope.get('/v1/models/:id', async (request, reply) => {
      if (fromCodex(request)) return passThrough(fastify, fastify.forwarder, request, reply)
      const ids = await modelList(request, reply)
      if (ids === null) return reply
      const { id } = request.params as { id: string }
      const kind = kindOf(request)
      // A name an alias maps is served as well as a listed one.
      if (!ids.includes(id) && resolveModel(id, config.modelAliases).model === id) {
        return reply.code(404).send(clientError(kind, 404, `The model '${id}' does not exist`, 'model_not_found', 'model'))
      }
      return reply.send(kind === 'anthropic' ? anthropicModel(id) : openaiModel(id))
    })
  })
}

type PoolCall =
  | { kind: 'reply', reply: UpstreamReply, account: Account | null, attempts: number, news: AnswerNews }
  | { kind: 'error', status: number, message: string, code: string | null, headers: Record<string, string>, attempts: number }
  | { kind: 'aborted' }

/** Runs one upstream request through the forwarder: the pool's answers become errors, the upstream's a reply. */
async function callPool (fastify: FastifyInstance, request: FastifyRequest, method: 'GET' | 'POST', path: string, body: RequestBody | undefined, gone = new ClientGone(), known?: KnownBody): Promise<PoolCall> {
  const { forwarder, pool, metrics } = fastify
  // The same client keys as the pass-through: a key over its limit or expired is refused here.
  const key = request.clientKey ?? null
  const keyName = key?.name ?? NO_KEY
  if (key !== null) {
    const verdict = fastify.clientKeys.verdict(key)
    if (verdict.kind !== 'ok') return poolError(fastify, keyRefusal(key, verdict, pool.now()), 0, keyName)
  }
  const { result, memory } = await forwarder.forward({ method, path: forwarder.basePath + path, clientHeaders: TRANSLATED_HEADERS, requestHeaders: {}, body, signal: gone, known })
  if (result.kind === 'aborted') return { kind: 'aborted' }
  if (result.kind === 'exhausted') return poolError(fastify, exhaustedAnswer(result.exhaustion, pool.now(), pool.list(), { ...askingClient(request), codex: false }), result.attempts, keyName)
  if (result.kind === 'upstream_failed' && result.value === null) return poolError(fastify, outageAnswer(result.failure), result.attempts, keyName)
  const reply = result.value!
  const account = result.kind === 'delivered' ? result.account : null
  metrics.served(account?.id ?? 'none', reply.status, keyName)
  if (reply.status !== 200 || account === null) return { kind: 'reply', reply, account, attempts: result.attempts, news: NO_NEWS }
  // The answer's reader tells the pool what a pass-through answer's watch would find (usage, a
  // failure): its events are read once. No blob makers to learn: a translated request never asks
  // for encrypted content, and no client API here could send it back.
  const news: AnswerNews = {
    usage: (usage) => { forwarder.countUsage(account, memory, keyName, usage) },
    failure: (error) => { pool.reportStreamFailure(account, error) }
  }
  return { kind: 'reply', reply, account, attempts: result.attempts, news }
}

const NO_NEWS: AnswerNews = { usage: () => {}, failure: () => {} }

/** The pool's own answer (no account could serve, or the upstream is out), to be put in the client's shape. */
function poolError (fastify: FastifyInstance, answer: PoolAnswer, attempts: number, keyName: string): PoolCall {
  fastify.metrics.served('none', answer.status, keyName)
  const { message, code } = upstreamMessage(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body), answer.status)
  const headers: Record<string, string> = { 'x-codex-eq-attempts': String(attempts) }
  if (answer.headers['retry-after'] !== undefined) headers['retry-after'] = answer.headers['retry-after']
  return { kind: 'error', status: answer.status, message, code, headers, attempts }
}

async function translated (fastify: FastifyInstance, api: ClientApi, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const started = performance.now()
  let call: Translated
  try {
    call = api.translate(request.body as Buffer | undefined, fastify.appConfig.modelAliases)
  } catch (err) {
    if (!(err instanceof RefusedInput)) throw err
    return reply.code(400).send(clientError(api.kind, 400, err.message, 'invalid_request', err.param))
  }
  // Its bytes are in `call` (with the client's long strings, as views of its body): let the parsed body go.
  request.body = undefined
  const gone = new ClientGone()
  const onClientGone = (): void => { if (!reply.raw.writableEnded) gone.abort() }
  reply.raw.once('close', onClientGone)
  const answer = await callPool(fastify, request, 'POST', '/responses', call.body, gone, call.known)
  // No attempt follows: let the body go now rather than hold it for as long as the answer streams.
  call.body = NO_BODY
  const attempts = answer.kind === 'aborted' ? 0 : answer.attempts
  /** The usage the answer told (the reader's), for the request's line in the history. */
  let told: CompletedUsage | null = null
  const news: AnswerNews = {
    usage: (usage) => {
      told = usage
      if (answer.kind === 'reply') answer.news.usage(usage)
    },
    failure: (error) => { if (answer.kind === 'reply') answer.news.failure(error) }
  }
  // Fields written out, not spread: in V8 11 `{ ...fields, more }` costs microseconds a call.
  const log = (status: number, extra: { account?: Account | null, left?: boolean, failure?: string, err?: string } = {}): void => {
    const account = extra.account ?? null
    const ms = Math.round(performance.now() - started)
    request.log.info({ api: api.kind, model: call.model, stream: call.stream, status, ms, account: account?.id, email: account?.email ?? undefined, left: extra.left, failure: extra.failure, err: extra.err }, 'translated')
    if (status !== 0) fastify.requestHistory.answered({ at: fastify.pool.now(), key: request.clientKey?.name ?? NO_KEY, account: account?.id ?? null, status, attempts, usage: told, ms })
  }
  if (answer.kind === 'aborted') {
    log(0, { left: true })
    return reply.hijack()
  }
  if (answer.kind === 'error') {
    reply.raw.off('close', onClientGone)
    log(answer.status)
    return reply.code(answer.status).headers(answer.headers).send(clientError(api.kind, answer.status, answer.message, answer.code))
  }
  const upstream = answer.reply
  const headers: Record<string, string> = { 'x-codex-eq-attempts': String(answer.attempts) }
  const account = answer.account
  if (account !== null) headers['x-codex-eq-account'] = account.id
  if (upstream.status !== 200) {
    reply.raw.off('close', onClientGone)
    const { message, code } = upstreamMessage(await readBody(upstream), upstream.status)
    const retryAfter = upstream.headers['retry-after']
    if (typeof retryAfter === 'string') headers['retry-after'] = retryAfter
    log(upstream.status, { account })
    return reply.code(upstream.status).headers(headers).send(clientError(api.kind, upstream.status, message, code))
  }
  if (!call.stream) {
    const collector = new AnswerCollector()
    const reader = new ResponsesReader(answerSink(call, collector), news)
    await drain(upstream, (chunk) => { reader.push(chunk) }, (broke) => { reader.broke((broke as NodeJS.ErrnoException).code ?? broke.message) }, gone)
    reply.raw.off('close', onClientGone)
    if (gone.aborted) {
      log(200, { account, left: true })
      return reply.hijack()
    }
    reader.end()
    const failure = collector.answer.failure
    if (failure !== null) {
      const status = failureStatus(failure.code)
      log(status, { account, failure: failure.code })
      return reply.code(status).headers(headers).send(clientError(api.kind, status, failure.message, failure.code))
    }
    log(200, { account })
    return reply.code(200).headers(headers).send(call.whole(collector.answer))
  }
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...headers })
  // What one upstream chunk makes leaves in one write: a socket write per event costs more than the translation.
  let pending = ''
  const reader = new ResponsesReader(answerSink(call, call.writer((text) => { pending += text })), news)
  const onChunk = (chunk: Buffer): void => {
    reader.push(chunk)
    if (pending !== '' && !reader.done) {
      raw.write(pending)
      pending = ''
    }
  }
  let err: string | undefined
  const onBreak = (broke: Error): void => {
    // Only an upstream that breaks blames the account; a client that leaves is nobody's fault.
    err = account === null ? broke.message : fastify.forwarder.streamBroke(account, broke)
    reader.broke((broke as NodeJS.ErrnoException).code ?? broke.message)
  }
  fastify.metrics.streamOpened()
  await drain(upstream, onChunk, onBreak, gone)
  reader.end()
  raw.off('close', onClientGone)
  fastify.metrics.streamClosed()
  log(200, { account, left: gone.aborted ? true : undefined, err })
  if (!raw.destroyed) raw.end(pending)
}

/** Feeds an answer's bytes (held and streamed) to `onChunk` until it ends, breaks or the client leaves. */
function drain (upstream: UpstreamReply, onChunk: (chunk: Buffer) => void, onBreak: (err: Error) => void, gone?: ClientGone): Promise<void> {
  if (upstream.buffered !== null) onChunk(upstream.buffered)
  const stream = upstream.stream
  if (stream === null) return Promise.resolve()
  return new Promise((resolve) => {
    const leave = (): void => {
      stream.destroy()
      resolve()
    }
    gone?.once('abort', leave)
    stream.on('data', onChunk)
    stream.once('end', () => { gone?.off('abort', leave); resolve() })
    stream.once('error', (err) => {
      gone?.off('abort', leave)
      onBreak(err)
      resolve()
    })
    stream.resume()
  })
}

/** An error answer's body: what was read to judge it, and the rest (bounded). */
async function readBody (upstream: UpstreamReply): Promise<string> {
  const chunks: Buffer[] = upstream.buffered === null ? [] : [upstream.buffered]
  let size = upstream.buffered?.length ?? 0
  if (upstream.stream !== null) {
    for await (const chunk of upstream.stream as AsyncIterable<Buffer>) {
      chunks.push(chunk)
      size += chunk.length
      if (size >= MAX_ERROR_BODY) {
        upstream.stream.destroy()
        break
      }
    }
  }
  return Buffer.concat(chunks).toString('utf8')
}

export default fp(clientsPlugin, { fastify: '5.x', name: 'clients', dependencies: ['account-pool', 'metrics', 'proxy', 'usage-ledger'] })

