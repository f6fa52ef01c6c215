import type { FastifyBaseLogger } from 'fastify'
import type WebSocket from 'ws'
import type { Config } from '../src/config.js'
import { proxyFailure, type EgressDispatchers } from '../src/egress/egress-proxy.js'
import type { PoolMetrics } from '../src/metrics.js'
import type { AccountPool, Lease, Sent } from '../src/pool/account-pool.js'
import type { Outage } from '../src/pool/upstream-trouble.js'
import { exhaustedAnswer, failedInsideStream, isCodexClient, outageAnswer } from '../src/pool/exhausted-answer.js'
import { NO_KEY } from '../src/pool/client-keys.js'
import type { UpstreamAnswer } from '../src/pool/failover-policy.js'
import { neverFitsMessage, overBudget, RETRY_AFTER_SECONDS, type BodyBudget } from '../src/wire/body-budget.js'
import { chainMovedFrame, errorFrame, readTurnFrame } from '../src/wire/ws-frames.js'
import type { RequestHistory } from '../src/pool/request-history.js'
import type { CompletedUsage } from '../src/wire/usage-watch.js'
import type { PoolForwarder } from './pool-forward.js'
import { ClientGone } from './upstream-call.js'
import { UpstreamSocket, type TurnStart } from './upstream-socket.js'
import { RequestBody } from '../src/wire/request-body.js'

/** What one attempt of a turn ended with, for the session to pass on. */
type Attempted =
  | { kind: 'started', start: TurnStart }
  /** The upgrade was refused with an HTTP answer. */
  | { kind: 'refused', answer: UpstreamAnswer }
  /** The turn is chained to another account's response: Codex must resend the whole history. */
  | { kind: 'moved' }

export interface SessionContext {
  pool: AccountPool
  forwarder: PoolForwarder
  metrics: PoolMetrics
  config: Config
  log: FastifyBaseLogger
  /** The accounts' egress proxies: an account's upstream socket goes through its own. */
  egress: EgressDispatchers
  /** Frames waiting for or in their turn are held for re-sending: they count in --max-buffered. */
  budget: BodyBudget
  /** The upstream `…/responses` as a ws:// or wss:// URL. */
  upstreamUrl: string
  /** This server as the client reached it (named in "no account" answers). */
  serverUrl: string
  /** The client key the connection came with (its name), for the per-key counts. */
  key: string
  /** Each turn answered is listed among the recent requests. */
  history: RequestHistory
}

/**
 * One client WebSocket on `/responses`: each `response.create` frame is a turn run through the
 * pool's ladder (`AccountPool.serve`) like a POST, sent over an upstream WebSocket of the chosen
 * account. The connection keeps that upstream socket (and so that account) while turns chain on
 * with `previous_response_id`; a chained turn whose account can no longer serve is answered with a
 * retryable `response.failed`, so Codex resends the whole history on a new connection.
 */
export class WebSocketSession {
  private upstream: UpstreamSocket | null = null
  private upstreamAccount: string | null = null
  private queue: Promise<void> = Promise.resolve()
  private readonly gone = new ClientGone()

  constructor (
    private readonly client: WebSocket,
    private readonly ctx: SessionContext,
    /** The client's upgrade headers to forward (credentials and handshake headers removed). */
    private readonly clientHeaders: Record<string, string>,
    /** The upgrade's headers as parsed (conversation key). */
    private readonly requestHeaders: Record<string, string | string[] | undefined>
  ) {
    client.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        this.send(errorFrame(400, {}, { error: { type: 'invalid_request_error', message: 'frames are JSON text' } }))
        return
      }
      // A frame is held until its turn is over (failover may send it again), so it takes its room in
      // --max-buffered first; one that does not fit is refused at once, as an HTTP body would be.
      const held = ctx.budget.hold(data.length)
      if (held !== 'held') {
        this.send(held === 'busy'
          ? errorFrame(503, { 'retry-after': String(RETRY_AFTER_SECONDS) }, overBudget(ctx.budget.maxBytes))
          : errorFrame(413, {}, { error: { type: 'body_too_large', message: neverFitsMessage(ctx.budget.maxBytes) } }))
        return
      }
      // Turns run one after another, as Codex sends them.
      this.queue = this.queue.then(() => this.turn(data)).catch((err: unknown) => {
        ctx.log.error({ err: { message: (err as Error).message } }, 'WebSocket turn failed')
        client.close(1011, 'internal error')
      }).finally(() => { ctx.budget.letGo(data.length) })
    })
    client.on('close', () => {
      this.gone.abort()
      this.dropUpstream()
    })
  }

  private async turn (data: Buffer): Promise<void> {
    if (this.gone.aborted) return
    const { pool, forwarder, metrics, config, log } = this.ctx
    const started = performance.now()
    const read = readTurnFrame(data)
    if (typeof read === 'string') {
      this.send(errorFrame(400, {}, { error: { type: 'invalid_request_error', message: read } }))
      return
    }
    if (read.previousResponseId !== null && this.upstreamAccount === null) {
      // A chain whose upstream socket is gone (a new connection, or one dropped after an error) is
      // unknown to every account: the backend would refuse it for good. Ask for the whole history.
      log.info({ transport: 'websocket', attempts: 0 }, 'chained turn without its upstream connection: asked for the whole history')
      this.send(chainMovedFrame())
      return
    }
    const memory = forwarder.memory.forRequest(this.requestHeaders, RequestBody.of(read.frame))
    const chainedTo = read.previousResponseId !== null ? this.upstreamAccount : null
    // Frames of the delivered attempt that arrive before its held ones are written wait here.
    let pending: string[] | null = []
    let watch: ((text: string) => void) | null = null
    const relay = (text: string): void => {
      watch?.(text)
      if (pending !== null) pending.push(text)
      else this.send(text)
    }

    const result = await pool.serve<Attempted>(async (lease): Promise<Sent<Attempted>> => {
      // The chain lives only on its account's open upstream socket: anywhere else it is unknown.
      if (chainedTo !== null && (lease.account.id !== chainedTo || this.upstream === null || this.upstream.closed)) {
        return { answer: { status: 200, headers: {}, errorBody: null }, value: { kind: 'moved' } }
      }
      const socket = await this.socketFor(lease)
      if (!(socket instanceof UpstreamSocket)) return { answer: socket, value: { kind: 'refused', answer: socket } }
      const timing = { holdMs: config.streamHoldMs, idleMs: config.streamIdleTimeoutMs }
      let start = await socket.start(memory.bodyFor(lease.account.id)?.whole() ?? read.frame, timing, relay)
      const retry = memory.bodyAfterRefusal(lease.account.id, start.status, start.errorBody)
      if (retry !== null) start = await socket.start(retry.whole(), timing, relay)
      return { answer: start, value: { kind: 'started', start } }
    }, { signal: this.gone, prefer: chainedTo ?? memory.prefer, model: () => memory.model() })
    memory.release()

    const ms = (): number => Math.round(performance.now() - started)
    const { attempts } = result
    const answered = (status: number, account: string | null, usage: CompletedUsage | null = null): void => {
      this.ctx.history.answered({ at: pool.now(), key: this.ctx.key, account, status, attempts, usage, ms: ms() })
    }
    const skipped = result.skipped.length > 0 ? result.skipped : undefined
    if (result.kind === 'aborted') {
      log.info({ transport: 'websocket', attempts, skipped, ms: ms() }, 'client left before the answer')
      return
    }
    if (result.kind === 'exhausted') {
      const answer = exhaustedAnswer(result.exhaustion, pool.now(), pool.list(), { codex: isCodexClient(this.requestHeaders), serverUrl: this.ctx.serverUrl })
      metrics.served('none', answer.status, this.ctx.key)
      log.warn({ transport: 'websocket', attempts, skipped, status: answer.status, exhaustion: result.exhaustion.kind, ms: ms() }, 'no account can serve')
      answered(answer.status, null)
      this.dropUpstream()
      this.send(errorFrame(answer.status, answer.headers, answer.body))
      return
    }
    if (result.kind === 'upstream_failed') {
      const { status, frames } = failedFrames(result.value, result.failure)
      metrics.served('none', status, this.ctx.key)
      log.warn({ transport: 'websocket', attempts, skipped, status, outage: result.outage, fault: result.failure.fault, ms: ms() }, 'upstream failing: its answer passed on')
      answered(status, null)
      this.dropUpstream()
      for (const text of frames) this.send(text)
      return
    }
    const { account, value } = result
    memory.served(account.id, {})
    metrics.served(account.id, value.kind === 'refused' ? value.answer.status : value.kind === 'started' ? value.start.status : 200, this.ctx.key)
    if (memory.blobsDropped > 0) metrics.blobsDropped(memory.blobsDropped)
    if (value.kind === 'moved') {
      log.info({ transport: 'websocket', attempts, skipped, account: account.id, email: account.email ?? undefined, ms: ms() }, 'chained turn moved to another account: asked for the whole history')
      this.dropUpstream()
      this.send(chainMovedFrame())
      return
    }
    if (value.kind === 'refused') {
      answered(value.answer.status, account.id)
      this.dropUpstream()
      this.send(errorFrame(value.answer.status, {}, value.answer.errorBody))
      return
    }
    let usage: CompletedUsage | null = null
    const watchFrame = forwarder.watchFrames(account, memory, this.ctx.key, (seen) => { usage = seen })
    for (const text of value.start.held) {
      watchFrame(text)
      this.send(text)
    }
    for (const text of pending) {
      watchFrame(text)
      this.send(text)
    }
    pending = null
    watch = watchFrame
    metrics.streamOpened()
    const err = await value.start.done
    metrics.streamClosed()
    answered(value.start.status, account.id, usage)
    const entry = { transport: 'websocket', key: this.ctx.key === NO_KEY ? undefined : this.ctx.key, attempts, skipped, account: account.id, email: account.email ?? undefined, blobsDropped: memory.blobsDropped > 0 ? memory.blobsDropped : undefined, ms: ms() }
    if (err !== null && !this.gone.aborted) {
      account.lastError = `stream broke: ${(err as NodeJS.ErrnoException).code ?? err.message}`
      account.lastErrorAt = pool.now()
      log.warn({ ...entry, err: account.lastError }, 'upstream stream broke')
      // As over HTTP, a broken stream reaches the client broken: Codex retries on a new connection.
      this.client.close(1011, 'upstream connection lost')
      return
    }
    log.info(entry, this.gone.aborted ? 'client left during the stream' : 'proxied')
  }

  /** The account's upstream socket: the open one when it is that account's, else a new one. */
  private async socketFor (lease: Lease): Promise<UpstreamSocket | UpstreamAnswer> {
    if (this.upstream !== null && !this.upstream.closed && this.upstreamAccount === lease.account.id) return this.upstream
    this.dropUpstream()
    const headers = { ...this.clientHeaders, authorization: `Bearer ${lease.accessToken}`, 'chatgpt-account-id': lease.chatgptAccountId }
    const proxy = lease.account.proxy
    const opened = await UpstreamSocket.open(this.ctx.upstreamUrl, headers, this.ctx.config.upstreamHeadersTimeoutMs, proxy === null ? undefined : this.ctx.egress.agentFor(proxy))
      .catch((err: unknown) => { throw proxy === null ? err : proxyFailure(err, proxy) ?? err })
    if (opened instanceof UpstreamSocket) {
      if (this.gone.aborted) {
        opened.close()
        throw new Error('client left')
      }
      this.upstream = opened
      this.upstreamAccount = lease.account.id
    }
    return opened
  }

  private dropUpstream (): void {
    this.upstream?.close()
    this.upstream = null
    this.upstreamAccount = null
  }

  private send (text: string): void {
    if (this.client.readyState === this.client.OPEN) this.client.send(text)
  }
}

/**
 * What the client hears of an upstream failure: the upstream's own refusal or error frames, or,
 * when there are none or the failure came inside a started stream, the pool's 5xx as an error frame.
 */
function failedFrames (value: Attempted | null, failure: Omit<Outage, 'since'>): { status: number, frames: string[] } {
  if (value?.kind === 'refused') return { status: value.answer.status, frames: [errorFrame(value.answer.status, {}, value.answer.errorBody)] }
  if (value?.kind === 'started' && value.start.held.length > 0 && !failedInsideStream(failure)) return { status: value.start.status, frames: value.start.held }
  const answer = outageAnswer(failure)
  return { status: answer.status, frames: [errorFrame(answer.status, answer.headers, answer.body)] }
}
