import type { Dispatcher } from 'undici'
import { Pool } from 'undici'
import type { Config } from '../src/config.js'
import type { PoolMetrics } from '../src/metrics.js'
import type { AccountPool, Sent, ServeResult } from '../src/pool/account-pool.js'
import { ConversationMemory, type RequestMemory } from '../src/pool/conversation-memory.js'
import type { Account } from '../src/store/records.js'
import { StreamFailureWatch } from '../src/wire/stream-failure.js'
import { callUpstream, type ClientGone, type UpstreamReply } from './upstream-call.js'

/** One request to run through the pool, whatever API the client spoke. */
export interface ForwardInput {
  method: Dispatcher.HttpMethod
  /** The upstream path, e.g. `/backend-api/codex/responses`. */
  path: string
  /** The client's headers to forward, as undici's flat list (credentials already removed). */
  clientHeaders: string[]
  /** The request's headers as parsed (conversation and turn-state keys). */
  requestHeaders: Record<string, string | string[] | undefined>
  body: Buffer | undefined
  signal: ClientGone
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
  readonly basePath: string
  readonly memory = new ConversationMemory()

  constructor (private readonly pool: AccountPool, private readonly metrics: PoolMetrics, private readonly config: Config) {
    const base = new URL(config.upstream)
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
    const memory = this.memory.forRequest(input.requestHeaders, input.body)
    const onHeaders = (seconds: number): void => { this.metrics.upstreamAnswered(seconds) }
    const result = await this.pool.serve<UpstreamReply>(async (lease): Promise<Sent<UpstreamReply>> => {
      const account = lease.account.id
      const headers = memory.headersFor(account, input.clientHeaders).concat('authorization', `Bearer ${lease.accessToken}`, 'chatgpt-account-id', lease.chatgptAccountId)
      const attempt = { path: input.path, method: input.method, headers, body: memory.bodyFor(account), signal: input.signal, holdMs: this.config.streamHoldMs, inspect400: memory.carriesBlobs }
      let answer = await callUpstream(this.upstream, attempt, onHeaders)
      // Blobs never seen (e.g. made before a restart) are refused the same way: drop every blob
      // not known as this account's own and send once more.
      if (answer.status === 400 && memory.carriesBlobs && /invalid_encrypted_content/.test(answer.errorBody ?? '')) {
        const retry = memory.bodyWithoutUnknownBlobs(account)
        if (retry !== null) {
          answer.stream?.destroy()
          answer = await callUpstream(this.upstream, { ...attempt, body: retry, inspect400: false }, onHeaders)
        }
      }
      return { answer, value: answer }
    }, { signal: input.signal, prefer: memory.prefer, model: () => memory.model() })
    memory.release()
    if (result.kind === 'delivered') memory.served(result.account.id, result.value.headers)
    if (memory.blobsDropped > 0) this.metrics.blobsDropped(memory.blobsDropped)
    return { result, memory }
  }

  /** What the pool learns from a delivered answer's bytes as they pass: blobs' makers, a late `response.failed`. */
  watch (account: Account, memory: RequestMemory): (chunk: Buffer) => void {
    const failures = new StreamFailureWatch((error) => { this.pool.reportStreamFailure(account, error) })
    const blobs = memory.learner(account.id)
    return (chunk) => {
      failures.push(chunk)
      blobs.push(chunk)
    }
  }

  /** An upstream stream broke while it was delivered: the account's last error says so (the message). */
  streamBroke (account: Account, err: Error): string {
    account.lastError = `stream broke: ${(err as NodeJS.ErrnoException).code ?? err.message}`
    account.lastErrorAt = this.pool.now()
    return account.lastError
  }

  async close (): Promise<void> {
    await this.upstream.destroy()
  }
}
