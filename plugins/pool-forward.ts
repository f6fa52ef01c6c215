import type { Dispatcher } from 'undici'
import { Pool } from 'undici'
import type { Config } from '../src/config.js'
import { proxyFailure, type EgressDispatchers } from '../src/egress/egress-proxy.js'
import type { PoolMetrics } from '../src/metrics.js'
import type { AccountPool, Sent, ServeResult } from '../src/pool/account-pool.js'
import { ConversationMemory, type KnownBody, type RequestMemory } from '../src/pool/conversation-memory.js'
import { failedInsideStream } from '../src/pool/exhausted-answer.js'
import type { Account } from '../src/store/records.js'
import type { UsageLedger } from '../src/store/usage-ledger.js'
import type { RequestBody } from '../src/wire/request-body.js'
import { MarkedEventWatch } from '../src/wire/marked-event-watch.js'
import { watchedFailure } from '../src/wire/stream-failure.js'
import { completedUsage, watchedUsage, type CompletedUsage } from '../src/wire/usage-watch.js'
import { failureAnswer, frameType } from '../src/wire/ws-frames.js'
import { writeSeveralChunksAtOnce } from './upstream-body.js'
import { callUpstream, type Attempt, type ClientGone, type UpstreamReply } from './upstream-call.js'

/** One request to run through the pool, whatever API the client spoke. */
export interface ForwardInput {
  method: Dispatcher.HttpMethod
  /** The upstream path, e.g. `/backend-api/codex/responses`. */
  path: string
  /** The client's headers to forward, as undici's flat list (credentials already removed). */
  clientHeaders: string[]
  /** The request's headers as parsed (conversation and turn-state keys). */
  requestHeaders: Record<string, string | string[] | undefined>
  body: RequestBody | undefined
  signal: ClientGone
  /** What the caller knows of a body it wrote itself (a translated request's), instead of searching it. */
  known?: KnownBody
}

export interface Forwarded {
  result: ServeResult<UpstreamReply>
  memory: RequestMemory
}

/**
 * The one path every client API takes into the pool: the failover ladder around undici calls,
 * with the conversation rules (encrypted blobs, turn state) applied per attempt. The proxy passes
 * answers through; translated APIs (Chat Completions, Messages) translate them — both feed the
 * passing bytes to `watch` so the pool learns from them.
 */
export class PoolForwarder {
  private readonly upstream: Pool
  private readonly origin: string
  readonly basePath: string
  readonly memory = new ConversationMemory()

  constructor (private readonly pool: AccountPool, private readonly metrics: PoolMetrics, private readonly ledger: UsageLedger, private readonly config: Config, private readonly egress: EgressDispatchers) {
    writeSeveralChunksAtOnce()
    const base = new URL(config.upstream)
    this.origin = base.origin
    this.basePath = base.pathname.replace(/\/+$/, '')
    this.upstream = new Pool(base.origin, {
      connect: { rejectUnauthorized: true },
      headersTimeout: config.upstreamHeadersTimeoutMs,
      // A reasoning turn can be silent for many minutes: only a long silence ends the stream.
      bodyTimeout: config.streamIdleTimeoutMs,
      keepAliveTimeout: 60_000
    })
  }

  async forward (input: ForwardInput): Promise<Forwarded> {
    const memory = this.memory.forRequest(input.requestHeaders, input.body, input.known)
    const onHeaders = (seconds: number): void => { this.metrics.upstreamAnswered(seconds) }
    const result = await this.pool.serve<UpstreamReply>(async (lease): Promise<Sent<UpstreamReply>> => {
      const account = lease.account.id
      const headers = memory.headersFor(account, input.clientHeaders).concat('authorization', `Bearer ${lease.accessToken}`, 'chatgpt-account-id', lease.chatgptAccountId)
      const attempt = { path: input.path, method: input.method, headers, body: memory.bodyFor(account), signal: input.signal, holdMs: this.config.streamHoldMs, blobs: memory }
      const proxy = lease.account.proxy
      // An account without a proxy takes the shared pool, exactly as if proxies did not exist.
      const call = proxy === null
        ? (o: Attempt) => callUpstream(this.upstream, o, onHeaders)
        : (o: Attempt) => callUpstream(this.egress.for(proxy), { ...o, origin: this.origin }, onHeaders).catch((err: unknown) => { throw proxyFailure(err, proxy) ?? err })
      let answer = await call(attempt)
      const retry = memory.bodyAfterRefusal(account, answer.status, answer.errorBody)
      if (retry !== null) {
        answer.stream?.destroy()
        answer = await call({ ...attempt, body: retry, blobs: null })
      }
      return { answer, value: answer }
    }, { signal: input.signal, prefer: memory.prefer, model: () => memory.model() })
    memory.release()
    // A failure inside a started stream is not passed on as it came (see failedInsideStream): its
    // reply is let go, and the caller answers with the pool's own 5xx, as when there is no reply.
    if (result.kind === 'upstream_failed' && result.value !== null && failedInsideStream(result.failure)) {
      result.value.stream?.destroy()
      return { result: { ...result, value: null }, memory }
    }
    if (result.kind === 'delivered') memory.served(result.account.id, result.value.headers)
    if (memory.blobsDropped > 0) this.metrics.blobsDropped(memory.blobsDropped)
    return { result, memory }
  }

  /**
   * What the pool learns from a delivered answer's bytes as they pass: blobs' makers, a late
   * `response.failed`, and the answer's usage, counted for the account, the client key and the
   * model (and handed to `onUsage`). A translated API reads the events itself and tells the pool
   * (`countUsage`, the pool's `reportStreamFailure`): it has no watch.
   */
  watch (account: Account, memory: RequestMemory, key: string, onUsage?: (usage: CompletedUsage) => void): (chunk: Buffer) => void {
    const failure = watchedFailure((error) => { this.pool.reportStreamFailure(account, error) })
    // Unless nobody wants the usage: both looked out for in one walk over each chunk.
    const events = new MarkedEventWatch(this.config.usageRetentionMs === 0
      ? [failure]
      : [failure, watchedUsage((seen) => {
          this.countUsage(account, memory, key, seen)
          onUsage?.(seen)
        })])
    const blobs = memory.learner(account.id)
    return (chunk) => {
      events.push(chunk)
      blobs.push(chunk)
    }
  }

  /** The same for an answer that comes as WebSocket text frames (one event each); `onUsage` is told the usage counted. */
  watchFrames (account: Account, memory: RequestMemory, key: string, onUsage?: (usage: CompletedUsage) => void): (frame: string) => void {
    const blobs = memory.learner(account.id)
    return (frame) => {
      const type = frameType(frame)
      if (type === 'response.failed') {
        const failure = failureAnswer(frame, {})?.streamError
        if (failure != null) this.pool.reportStreamFailure(account, failure)
      } else if (type === 'response.completed') {
        const seen = completedUsage(type, frame)
        if (seen !== null) {
          this.countUsage(account, memory, key, seen)
          onUsage?.(seen)
        }
      }
      blobs.push(Buffer.from(frame))
    }
  }

  /** An answer's usage, counted for the account, the client key and the model (unless there is no ledger). */
  countUsage (account: Account, memory: RequestMemory, key: string, seen: CompletedUsage): void {
    if (this.config.usageRetentionMs === 0) return
    const now = this.pool.now()
    this.ledger.record(now, { account: account.id, key, model: seen.model ?? memory.model() ?? 'unknown', input: seen.input, cachedInput: seen.cachedInput, output: seen.output, reasoning: seen.reasoning })
    this.ledger.recordQuota(now, { account: account.id, primary: account.quota?.primary?.usedPercent ?? null, secondary: account.quota?.secondary?.usedPercent ?? null })
    this.metrics.tokens(account.id, key, seen)
  }

  /** A delivered stream broke upstream: the account's last error says so (a client leaving is nobody's fault). */
  streamBroke (account: Account, err: Error): string {
    account.lastError = `stream broke: ${(err as NodeJS.ErrnoException).code ?? err.message}`
    account.lastErrorAt = this.pool.now()
    return account.lastError
  }

  async close (): Promise<void> {
    await this.upstream.destroy()
  }
}
