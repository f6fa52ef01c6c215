import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { STATUS_CODES } from 'node:http'
import { randomUUID } from 'node:crypto'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { decodeBody, parseJson, readBody, sendJson, sleep, writeFlushed } from './http.js'
import { randomHex } from './jwt.js'
import { accountOfEncryptedContent, accountOfTurnState, encryptedContentFor, formatEvent, turnEvents, turnStateFor, type SseEvent } from './sse.js'
import type { FakeAccount, FakeState } from './state.js'

/**
 * Where a usage-limit answer says when the limit resets: the 429 body (`resets_at`,
 * `resets_in_seconds`), the `x-codex-*-reset-at` headers, the `x-codex-*-reset-after-seconds`
 * headers, all of these, or nowhere.
 */
export type ResetVia = 'body' | 'headers' | 'headers-after' | 'all' | 'none'

export type Step =
  /** This status with this JSON body (default `{"detail": <reason phrase>}`); quota headers without reset times, then `headers`. */
  | { kind: 'status', status: number, body?: unknown, headers?: Record<string, string> }
  /** One 429 usage_limit_reached (defaults: resets in 3600 s, via 'all'). */
  | { kind: 'usage_limit', resetsAt?: number, resetsInSeconds?: number, via?: ResetVia, planType?: string }
  /** Takes the request and never answers (until the client goes away or the fake closes). */
  | { kind: 'hang' }
  /** 200 SSE, then the socket is destroyed after this many events (0: right after the headers). */
  | { kind: 'drop', afterEvents: number }
  /** 200 SSE with this delay between events. */
  | { kind: 'slow', eventDelayMs: number }
  /**
   * 200 SSE (response.created, response.in_progress) that ends with response.failed
   * `{error: {code, message, resets_at?}}`; with `afterContent` the reasoning item and a first text
   * delta come before the failure.
   */
  | { kind: 'stream_failed', code: string, message: string, resetsAt?: number, afterContent?: boolean }
  /** 200 SSE of about this many bytes: after the first event, SSE comment lines (which every client ignores). */
  | { kind: 'large', bytes: number }
  /** A turn that asks Codex to run a shell command: a `function_call` to `exec_command` with `{"cmd"}`, no message. */
  | { kind: 'tool_call', cmd: string }
  /** 200 SSE whose message is followed by these function calls (arguments streamed in deltas). */
  | { kind: 'tool_calls', calls: Array<{ name: string, arguments: string }> }

export interface ExhaustedOptions {
  /** Unix seconds. Default: now + resetsInSeconds, or now + 3600 (never, with via 'none' and no time given). */
  resetsAt?: number
  resetsInSeconds?: number
  /** Default 'all'. */
  via?: ResetVia
  /** plan_type in the body and x-codex-plan-type; default the account's plan. */
  planType?: string
}

/** An upstream outage: every request under /backend-api/codex/ gets this, before authentication. */
export interface OutageOptions {
  /** 'status' (default): answer `status` with JSON `body`; 'reset': destroy the socket; 'hang': never answer. */
  mode?: 'status' | 'reset' | 'hang'
  /** Default 502. */
  status?: number
  /** Default `{"detail": <reason phrase>}`. */
  body?: unknown
  /** The outage ends by itself after this many ms of the fake's clock. */
  forMs?: number
  /** `forMs` counts from the first request the outage answers, not from now: a client slow to start still meets all of it. */
  fromFirstRequest?: boolean
}

/** A model-scoped usage limit (protocol §5.1). */
export interface ModelLimitOptions {
  /** The limit family, e.g. `codex_bengalfox` (headers `x-codex-bengalfox-*`). */
  family: string
  /** The `-limit-name` header, e.g. a model's display name. */
  limitName: string
  /** Unix seconds; default now + 3600. The limit lifts once it has passed. */
  resetsAt?: number
}

/** An encrypted blob a request carried: where it was, and the account it was made under (null: not ours). */
export interface RecordedBlob {
  /** `reasoning`, `compaction`, `compaction_summary`, `context_compaction`, or `<item type>.output` / `<item type>.content`. */
  where: string
  owner: string | null
}

export interface QuotaSettings {
  primaryUsedPercent: number
  secondaryUsedPercent: number
  primaryWindowMinutes: number
  secondaryWindowMinutes: number
  /** Unix seconds. */
  primaryResetAt: number
  secondaryResetAt: number
  activeLimit: string
  /** Overrides the account's plan in x-codex-plan-type and /wham/usage. */
  planType?: string
}

export type QuotaUpdate = Partial<QuotaSettings> & { primaryResetAfterSeconds?: number, secondaryResetAfterSeconds?: number }

export interface UsageWindow {
  used_percent: number
  limit_window_seconds: number
  reset_after_seconds: number
  reset_at: number
}

export interface WhamUsage {
  plan_type: string
  rate_limit: { allowed: boolean, limit_reached: boolean, primary_window: UsageWindow, secondary_window: UsageWindow }
  credits: { has_credits: boolean, unlimited: boolean, balance: string }
}

export interface RecordedRequest {
  /** `http`, or `websocket` for a `response.create` frame (method `WS`) on an upgraded connection. */
  transport: 'http' | 'websocket'
  /** For WebSocket frames: which upstream connection (1, 2, … in order of upgrade). */
  connection?: number
  method: string
  /** The full path with query, e.g. `/backend-api/codex/responses`. */
  path: string
  headers: IncomingHttpHeaders
  /** Parsed JSON (after undoing content-encoding), or null. */
  body: any
  rawBody: Buffer
  /** The ChatGPT-Account-ID header. */
  accountId: string | undefined
  /** Email of the account whose token was accepted; undefined when authentication failed. */
  servedBy: string | undefined
  /** 0 while unanswered (e.g. a hang). */
  status: number
  /** Bytes of the streamed answer written so far (a write counts once the socket has taken it). */
  bytesSent: number
  /** Every encrypted blob in the body's `input`, accepted or not. */
  blobs: RecordedBlob[]
  /** The request's x-codex-turn-state header. */
  turnState: string | undefined
}

export interface FakeBackend {
  requests: RecordedRequest[]
  /** Every accepted WebSocket upgrade, in order (`connection` numbers the frames' `connection`). */
  wsConnections: Array<{ connection: number, accountId: string, headers: IncomingHttpHeaders, closed: boolean }>
  /**
   * For ordinary success streams: delay between events, how many text deltas, and whether an
   * `agent_message` item with an encrypted part is emitted (default false).
   */
  streamOptions: { eventDelayMs: number, deltas: number, agentMessage?: boolean }
  /** How many requests an outage answered (or reset, or left hanging). */
  outageRequests: number
  /** Starts (or with null ends) an upstream outage of everything under /backend-api/codex/; /wham/usage is not affected. */
  setOutage (o: OutageOptions | null): void
  /** A model-scoped 429 usage_limit_reached for that account's /responses and /responses/compact requests of that model; null lifts it. */
  setModelLimit (accountId: string, model: string, o: ModelLimitOptions | null): void
  /** Queues one-shot behaviours for the next authenticated, well-formed /responses requests of that account. */
  script (accountId: string, ...steps: Step[]): void
  /** How many scripted steps of that account are still queued. */
  pendingSteps (accountId: string): number
  /** Persistent: every /responses (and /responses/compact) answers 429 usage_limit_reached until cleared with null or resetsAt has passed. */
  setExhausted (accountId: string, o: ExhaustedOptions | null): void
  /** Changes the quota the x-codex-* headers and /wham/usage report. */
  setQuotaHeaders (accountId: string, q: QuotaUpdate): void
  /** What /wham/usage answers for that account now. */
  usage (accountId: string): WhamUsage
  /** Every access token of that account issued so far gets 401 token_invalidated from now on. */
  revokeAccessTokens (accountId: string): void
}

interface Limit { resetsAt: number | null, via: ResetVia, planType: string | undefined }
interface ModelLimit { family: string, limitName: string, resetsAt: number }
interface AccountBackendState { steps: Step[], exhausted: Limit | null, quota: QuotaSettings, modelLimits: Map<string, ModelLimit> }
interface Outage { mode: 'status' | 'reset' | 'hang', status: number, body: unknown, until: number | null, startsAtFirst: number | null }

/**
 * What the backend refuses in a Responses body's shape: `instructions` that is not a string, `input`
 * that is not a list, items and content parts of unknown types or missing their fields, tools that
 * are not named functions. The message is the backend's kind of `detail`.
 */
export function invalidRequest (body: Record<string, unknown>): string | null {
  if (body.instructions !== undefined && typeof body.instructions !== 'string') return 'Invalid type for \'instructions\': expected a string'
  if (body.input !== undefined && !Array.isArray(body.input)) return 'Invalid type for \'input\': expected an array'
  const input = (body.input ?? []) as unknown[]
  const text = (part: Record<string, unknown>): boolean => typeof part.text === 'string'
  const parts: Record<string, (part: Record<string, unknown>) => boolean> = {
    input_text: text,
    output_text: text,
    input_image: (part) => typeof part.image_url === 'string' && /^(https?:|data:image\/)/.test(part.image_url),
    encrypted_content: (part) => typeof part.encrypted_content === 'string'
  }
  const partsOk = (list: unknown): boolean => typeof list === 'string' || (Array.isArray(list) && list.every((part) => part !== null && typeof part === 'object' && parts[(part as Record<string, unknown>).type as string]?.(part as Record<string, unknown>) === true))
  for (const [i, raw] of input.entries()) {
    if (raw === null || typeof raw !== 'object') return `Invalid input[${i}]: expected an object`
    const item = raw as Record<string, unknown>
    const type = item.type ?? 'message'
    const ok = type === 'message'
      ? ['user', 'assistant', 'system', 'developer'].includes(item.role as string) && partsOk(item.content)
      : type === 'function_call'
        ? typeof item.call_id === 'string' && typeof item.name === 'string' && typeof item.arguments === 'string'
        : type === 'function_call_output' || type === 'custom_tool_call_output'
          ? typeof item.call_id === 'string' && partsOk(item.output)
          : typeof type === 'string'
    if (!ok) return `Invalid input[${i}]: not a valid ${String(type)} item`
  }
  const tools = body.tools ?? []
  if (!Array.isArray(tools) || !tools.every((tool) => tool !== null && typeof tool === 'object' && (tool.type !== 'function' || (typeof tool.name === 'string' && tool.parameters !== null && typeof tool.parameters === 'object')))) return 'Invalid \'tools\': functions need a name and parameters'
  return null
}

/** Input items whose own `encrypted_content` is bound to the account that made them. */
const BOUND_ITEMS = ['reasoning', 'compaction', 'compaction_summary', 'context_compaction']

export function createBackend (state: FakeState, signal: AbortSignal): {
  backend: FakeBackend
  handle: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>
  upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void
} {
  const perAccount = new Map<string, AccountBackendState>()
  let outage: Outage | null = null

  function of (accountId: string): AccountBackendState {
    let entry = perAccount.get(accountId)
    if (entry === undefined) {
      const now = state.nowSec()
      entry = {
        steps: [],
        exhausted: null,
        modelLimits: new Map(),
        quota: {
          primaryUsedPercent: 10,
          secondaryUsedPercent: 5,
          primaryWindowMinutes: 300,
          secondaryWindowMinutes: 10080,
          primaryResetAt: now + 2 * 3600,
          secondaryResetAt: now + 3 * 86400,
          activeLimit: 'codex'
        }
      }
      perAccount.set(accountId, entry)
    }
    return entry
  }

  function limitFrom (o: { resetsAt?: number, resetsInSeconds?: number, via?: ResetVia, planType?: string }): Limit {
    const via = o.via ?? 'all'
    const resetsAt = o.resetsAt ?? (o.resetsInSeconds !== undefined
      ? state.nowSec() + o.resetsInSeconds
      : via === 'none' ? null : state.nowSec() + 3600)
    return { resetsAt, via, planType: o.planType }
  }

  function activeExhaustion (accountId: string): Limit | null {
    const entry = of(accountId)
    if (entry.exhausted?.resetsAt != null && state.nowSec() >= entry.exhausted.resetsAt) entry.exhausted = null
    return entry.exhausted
  }

  function planOf (accountId: string, limit: Limit | null): string {
    return limit?.planType ?? of(accountId).quota.planType ?? state.find(accountId)?.plan ?? 'plus'
  }

  /** Quota headers; with a limit the primary window is used up and the reset times appear only where `via` says. */
  function quotaHeaders (accountId: string, limit: Limit | null, withResets = true): Record<string, string> {
    const q = of(accountId).quota
    const now = state.nowSec()
    const headers: Record<string, string> = {
      'x-codex-plan-type': planOf(accountId, limit),
      'x-codex-active-limit': q.activeLimit,
      'x-codex-credits-has-credits': 'False',
      'x-codex-credits-unlimited': 'False',
      'x-codex-primary-used-percent': String(limit !== null ? 100 : q.primaryUsedPercent),
      'x-codex-primary-window-minutes': String(q.primaryWindowMinutes),
      'x-codex-secondary-used-percent': String(q.secondaryUsedPercent),
      'x-codex-secondary-window-minutes': String(q.secondaryWindowMinutes)
    }
    const via = limit?.via ?? 'all'
    if (!withResets || via === 'body' || via === 'none') return headers
    const windows = [
      ['primary', limit?.resetsAt ?? q.primaryResetAt],
      ['secondary', q.secondaryResetAt]
    ] as const
    for (const [name, resetAt] of windows) {
      if (via === 'headers' || via === 'all') headers[`x-codex-${name}-reset-at`] = String(resetAt)
      if (via === 'headers-after' || via === 'all') headers[`x-codex-${name}-reset-after-seconds`] = String(Math.max(0, resetAt - now))
    }
    return headers
  }

  function usage (accountId: string): WhamUsage {
    const q = of(accountId).quota
    const limit = activeExhaustion(accountId)
    const now = state.nowSec()
    const window = (used: number, minutes: number, resetAt: number): UsageWindow =>
      ({ used_percent: used, limit_window_seconds: minutes * 60, reset_after_seconds: Math.max(0, resetAt - now), reset_at: resetAt })
    return {
      plan_type: planOf(accountId, limit),
      rate_limit: {
        allowed: limit === null,
        limit_reached: limit !== null,
        primary_window: window(limit !== null ? 100 : q.primaryUsedPercent, q.primaryWindowMinutes, limit?.resetsAt ?? q.primaryResetAt),
        secondary_window: window(q.secondaryUsedPercent, q.secondaryWindowMinutes, q.secondaryResetAt)
      },
      credits: { has_credits: false, unlimited: false, balance: '0' }
    }
  }

  const backend: FakeBackend = {
    requests: [],
    wsConnections: [],
    streamOptions: { eventDelayMs: 0, deltas: 3, agentMessage: false },
    outageRequests: 0,
    setOutage (o) {
      if (o === null) {
        outage = null
        return
      }
      const status = o.status ?? 502
      outage = {
        mode: o.mode ?? 'status',
        status,
        body: o.body ?? { detail: STATUS_CODES[status] ?? 'Error' },
        until: o.forMs !== undefined && o.fromFirstRequest !== true ? state.now() + o.forMs : null,
        startsAtFirst: o.forMs !== undefined && o.fromFirstRequest === true ? o.forMs : null
      }
    },
    setModelLimit (accountId, model, o) {
      const limits = of(accountId).modelLimits
      if (o === null) limits.delete(model)
      else limits.set(model, { family: o.family, limitName: o.limitName, resetsAt: o.resetsAt ?? state.nowSec() + 3600 })
    },
    script (accountId, ...steps) { of(accountId).steps.push(...steps) },
    pendingSteps (accountId) { return of(accountId).steps.length },
    setExhausted (accountId, o) { of(accountId).exhausted = o === null ? null : limitFrom(o) },
    setQuotaHeaders (accountId, update) {
      const { primaryResetAfterSeconds, secondaryResetAfterSeconds, ...rest } = update
      const q = of(accountId).quota
      Object.assign(q, rest)
      if (primaryResetAfterSeconds !== undefined) q.primaryResetAt = state.nowSec() + primaryResetAfterSeconds
      if (secondaryResetAfterSeconds !== undefined) q.secondaryResetAt = state.nowSec() + secondaryResetAfterSeconds
    },
    usage,
    revokeAccessTokens (accountId) { state.revokeAccessTokens(accountId) }
  }

  /** The outage a request now meets, if any; a request is what starts one that counts from the first. */
  function activeOutage (): Outage | null {
    if (outage?.until != null && state.now() >= outage.until) outage = null
    if (outage?.startsAtFirst != null) {
      outage.until = state.now() + outage.startsAtFirst
      outage.startsAtFirst = null
    }
    return outage
  }

  function authenticate (req: IncomingMessage): FakeAccount | { error: unknown } {
    const unauthorized = { error: { detail: 'Unauthorized' } }
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')
    const info = match === null ? undefined : state.accessTokens.get(match[1]!)
    if (info === undefined) return unauthorized
    if (info.revoked) {
      return { error: { error: { message: 'Your authentication token has been invalidated. Please try signing in again.', type: 'invalid_request_error', param: null, code: 'token_invalidated' } } }
    }
    if (state.nowSec() >= info.exp) {
      return { error: { error: { message: 'Provided authentication token is expired. Please try signing in again.', type: 'invalid_request_error', param: null, code: 'token_expired' } } }
    }
    if (req.headers['chatgpt-account-id'] !== info.accountId) return unauthorized
    return state.account(info.accountId)
  }

  function usageLimitBody (limit: Limit, accountId: string): unknown {
    const error: Record<string, unknown> = { type: 'usage_limit_reached', message: 'The usage limit has been reached', plan_type: planOf(accountId, limit) }
    if ((limit.via === 'body' || limit.via === 'all') && limit.resetsAt !== null) {
      error.resets_at = limit.resetsAt
      error.resets_in_seconds = Math.max(0, limit.resetsAt - state.nowSec())
    }
    return { error }
  }

  /** Every encrypted blob in `input`: bound items and encrypted parts inside items' `output` / `content` arrays. */
  function blobsOf (body: unknown): Array<RecordedBlob & { content: string }> {
    const blobs: Array<RecordedBlob & { content: string }> = []
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return blobs
    const input = (body as Record<string, unknown>).input
    if (!Array.isArray(input)) return blobs
    const add = (where: string, content: string): void => { blobs.push({ where, owner: accountOfEncryptedContent(content), content }) }
    for (const item of input as unknown[]) {
      if (item === null || typeof item !== 'object') continue
      const fields = item as Record<string, unknown>
      const type = typeof fields.type === 'string' ? fields.type : 'message'
      if (BOUND_ITEMS.includes(type) && typeof fields.encrypted_content === 'string') add(type, fields.encrypted_content)
      for (const key of ['output', 'content'] as const) {
        const parts = fields[key]
        if (!Array.isArray(parts)) continue
        for (const part of parts as unknown[]) {
          if (part === null || typeof part !== 'object') continue
          const { type: partType, encrypted_content: content } = part as Record<string, unknown>
          if (partType === 'encrypted_content' && typeof content === 'string') add(`${type}.${key}`, content)
        }
      }
    }
    return blobs
  }

  /** The refusal for the first blob made under another account (or not made by us at all), if any. */
  function foreignBlob (blobs: Array<RecordedBlob & { content: string }>, accountId: string): unknown {
    const foreign = blobs.find((blob) => blob.owner !== accountId)
    if (foreign === undefined) return null
    const message = foreign.owner === null
      ? 'The encrypted content could not be decrypted or parsed.'
      : 'The encrypted content could not be verified: organization_id did not match'
    return { error: { message, type: 'invalid_request_error', param: null, code: 'invalid_encrypted_content' } }
  }

  function activeModelLimit (accountId: string, model: unknown): ModelLimit | null {
    if (typeof model !== 'string') return null
    const limits = of(accountId).modelLimits
    const limit = limits.get(model)
    if (limit === undefined) return null
    if (state.nowSec() >= limit.resetsAt) {
      limits.delete(model)
      return null
    }
    return limit
  }

  function modelLimitHeaders (accountId: string, limit: ModelLimit): Record<string, string> {
    const prefix = `x-${limit.family.toLowerCase().replace(/_/g, '-')}`
    return {
      ...quotaHeaders(accountId, null),
      'x-codex-active-limit': limit.family,
      [`${prefix}-primary-used-percent`]: '100',
      [`${prefix}-primary-window-minutes`]: '300',
      [`${prefix}-primary-reset-at`]: String(limit.resetsAt),
      [`${prefix}-secondary-used-percent`]: '0',
      [`${prefix}-secondary-window-minutes`]: '10080',
      [`${prefix}-limit-name`]: limit.limitName
    }
  }

  function replyText (account: FakeAccount, body: Record<string, unknown>): string {
    const input = Array.isArray(body.input) ? body.input as unknown[] : []
    let said = ''
    for (let i = input.length - 1; i >= 0 && said === ''; i--) {
      const item = input[i] as Record<string, unknown> | null
      if (item === null || typeof item !== 'object' || item.role !== 'user') continue
      if (typeof item.content === 'string') said = item.content
      else if (Array.isArray(item.content)) {
        said = (item.content as Array<Record<string, unknown> | null>)
          .map((part) => typeof part?.text === 'string' ? part.text : '')
          .join('')
      }
    }
    said = said.trim().slice(0, 200)
    return said === '' ? `served by ${account.email}` : `served by ${account.email}: ${said}`
  }

  /** Remote compaction v2: the input ends with `{"type":"compaction_trigger"}`. */
  function isCompactionTrigger (body: Record<string, unknown>): boolean {
    const input = Array.isArray(body.input) ? body.input as unknown[] : []
    const last = input.at(-1) as Record<string, unknown> | null | undefined
    return last !== null && typeof last === 'object' && last.type === 'compaction_trigger'
  }

  async function stream (res: ServerResponse, rec: RecordedRequest, account: FakeAccount, body: Record<string, unknown>, step: Step | undefined): Promise<void> {
    const delayMs = step?.kind === 'slow' ? step.eventDelayMs : backend.streamOptions.eventDelayMs
    const events = eventsFor(rec, account, body, step)
    const turnState = rec.turnState !== undefined && accountOfTurnState(rec.turnState) === account.accountId
      ? rec.turnState
      : turnStateFor(account.accountId)
    rec.status = 200
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': randomUUID(),
      'x-codex-turn-state': turnState,
      ...quotaHeaders(account.accountId, null)
    })
    res.flushHeaders()
    const send = async (chunk: string): Promise<void> => {
      await writeFlushed(res, chunk)
      rec.bytesSent += Buffer.byteLength(chunk)
    }
    for (let i = 0; i < events.length; i++) {
      if (step?.kind === 'drop' && i >= step.afterEvents) break
      if (i > 0) await sleep(delayMs, signal)
      if (res.destroyed) return
      await send(formatEvent(events[i]!))
      if (step?.kind === 'large' && i === 0) {
        const padding = `: ${'x'.repeat(64 * 1024 - 4)}\n\n`
        while (rec.bytesSent < step.bytes && !res.destroyed) await send(padding)
      }
    }
    if (step?.kind === 'drop') {
      await new Promise((resolve) => setImmediate(resolve))
      res.destroy()
      return
    }
    res.end()
  }

  /** What a well-formed, authenticated /responses or /responses/compact request gets (HTTP and WebSocket alike). */
  type Decision = { kind: 'reply', status: number, body: unknown, headers: Record<string, string> } | { kind: 'hang' } | { kind: 'stream', step: Step | undefined }

  function decide (account: FakeAccount, body: Record<string, unknown> | null, compact: boolean, stream: boolean): Decision {
    const id = account.accountId
    const reply = (status: number, answer: unknown, headers: Record<string, string>): Decision => ({ kind: 'reply', status, body: answer, headers })
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return reply(400, { detail: 'Request body must be a JSON object' }, quotaHeaders(id, null, false))
    if (!compact && stream && body.stream !== true) return reply(400, { detail: 'Stream must be set to true' }, quotaHeaders(id, null, false))
    if (!compact && body.store !== false) return reply(400, { detail: 'Store must be set to false' }, quotaHeaders(id, null, false))
    const invalid = invalidRequest(body)
    if (invalid !== null) return reply(400, { detail: invalid }, quotaHeaders(id, null, false))

    // A WebSocket prewarm (`generate: false`) is no turn: scripted steps wait for the real one.
    const step = compact || body.generate === false ? undefined : of(id).steps.shift()
    if (step?.kind === 'status') {
      return reply(step.status, step.body ?? { detail: STATUS_CODES[step.status] ?? 'Error' }, { ...quotaHeaders(id, null, false), ...step.headers })
    }
    if (step?.kind === 'usage_limit') {
      const limit = limitFrom(step)
      return reply(429, usageLimitBody(limit, id), quotaHeaders(id, limit))
    }
    if (step?.kind === 'hang') return { kind: 'hang' }
    const modelLimit = step === undefined ? activeModelLimit(id, body.model) : null
    if (modelLimit !== null) {
      const error = { type: 'usage_limit_reached', message: 'The usage limit has been reached', plan_type: planOf(id, null), resets_at: modelLimit.resetsAt }
      return reply(429, { error }, modelLimitHeaders(id, modelLimit))
    }
    const exhausted = step === undefined ? activeExhaustion(id) : null
    if (exhausted !== null) return reply(429, usageLimitBody(exhausted, id), quotaHeaders(id, exhausted))
    const rejection = foreignBlob(blobsOf(body), id)
    if (rejection !== null) return reply(400, rejection, quotaHeaders(id, null, false))
    if (compact) {
      const text = `compacted by ${account.email}`
      const item = { id: `msg_${randomHex(24)}`, type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] }
      const compaction = { type: 'compaction', encrypted_content: encryptedContentFor(id) }
      return reply(200, { output: [item, compaction] }, quotaHeaders(id, null))
    }
    return { kind: 'stream', step }
  }

  async function responses (res: ServerResponse, rec: RecordedRequest, account: FakeAccount, compact: boolean): Promise<void> {
    const decision = decide(account, rec.body as Record<string, unknown> | null, compact, true)
    if (decision.kind === 'hang') return
    if (decision.kind === 'reply') {
      rec.status = decision.status
      sendJson(res, decision.status, decision.body, decision.headers)
      return
    }
    await stream(res, rec, account, rec.body as Record<string, unknown>, decision.step)
  }

  /**
   * The backend's prompt cache, per account and `prompt_cache_key`: the input tokens of the last
   * turn there. A turn that follows one on the same account and key reports that many (at most
   * its own) as cached, as the real backend reports a reused prefix.
   */
  const promptCache = new Map<string, number>()
  function cachedTokens (account: FakeAccount, body: Record<string, unknown>, inputTokens: number): number {
    if (typeof body.prompt_cache_key !== 'string') return 0
    const key = `${account.accountId}\0${body.prompt_cache_key}`
    const before = promptCache.get(key) ?? 0
    promptCache.set(key, inputTokens)
    return Math.min(before, inputTokens)
  }

  /** The events of one successful turn (or of a scripted `stream_failed`). */
  function eventsFor (rec: RecordedRequest, account: FakeAccount, body: Record<string, unknown>, step: Step | undefined): SseEvent[] {
    const inputTokens = Math.max(1, Math.ceil(rec.rawBody.length / 4))
    return turnEvents({
      accountId: account.accountId,
      model: typeof body.model === 'string' ? body.model : 'gpt-5-codex',
      text: replyText(account, body),
      deltas: backend.streamOptions.deltas,
      inputTokens,
      cachedTokens: cachedTokens(account, body, inputTokens),
      createdAt: state.nowSec(),
      compaction: isCompactionTrigger(body),
      agentMessage: backend.streamOptions.agentMessage === true,
      ...(step?.kind === 'tool_call' ? { toolCall: { name: 'exec_command', arguments: JSON.stringify({ cmd: step.cmd }) } } : {}),
      ...(step?.kind === 'tool_calls' ? { toolCalls: step.calls } : {}),
      ...(step?.kind === 'stream_failed'
        ? { failure: { code: step.code, message: step.message, ...(step.resetsAt !== undefined ? { resetsAt: step.resetsAt } : {}), afterContent: step.afterContent === true } }
        : {})
    })
  }

  /**
   * A WebSocket upgrade of `GET /backend-api/codex/responses` (protocol §5.6): authenticated like a
   * POST, the 101 carries the quota headers and a turn state; then each `response.create` text frame is
   * one turn, answered with the events as text frames, or an `error` frame carrying status and headers.
   * `previous_response_id` must name a response completed on the same connection.
   */
  let connections = 0
  const sockets = new WebSocketServer({ noServer: true })
  function upgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://fake.invalid')
    const refuse = (status: number, body: unknown): void => {
      const text = JSON.stringify(body)
      socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`)
    }
    if (url.pathname !== '/backend-api/codex/responses') return refuse(404, { detail: 'Not Found' })
    if (activeOutage() !== null) {
      backend.outageRequests += 1
      if (outage!.mode === 'status') return refuse(outage!.status, outage!.body)
      if (outage!.mode === 'reset') socket.destroy()
      return
    }
    const auth = authenticate(req)
    if ('error' in auth) return refuse(401, auth.error)
    const account = auth
    const connection = ++connections
    const extra = { 'x-codex-turn-state': turnStateFor(account.accountId), ...quotaHeaders(account.accountId, null) }
    const addHeaders = (headers: string[]): void => { for (const [name, value] of Object.entries(extra)) headers.push(`${name}: ${value}`) }
    sockets.once('headers', addHeaders)
    sockets.handleUpgrade(req, socket, head, (ws) => {
      const entry = { connection, accountId: account.accountId, headers: req.headers, closed: false }
      backend.wsConnections.push(entry)
      ws.on('close', () => { entry.closed = true })
      const completed = new Set<string>()
      let queue = Promise.resolve()
      ws.on('message', (data: Buffer) => {
        queue = queue.then(() => wsTurn(ws, req, connection, account, data, completed)).catch(() => { ws.terminate() })
      })
    })
  }

  async function wsTurn (ws: WebSocket, req: IncomingMessage, connection: number, account: FakeAccount, data: Buffer, completed: Set<string>): Promise<void> {
    const frame = parseJson(data.toString('utf8')) as Record<string, unknown> | null
    const { type, ...body } = frame ?? {}
    const rec: RecordedRequest = {
      transport: 'websocket',
      connection,
      method: 'WS',
      path: '/backend-api/codex/responses',
      headers: req.headers,
      body,
      rawBody: data,
      accountId: account.accountId,
      servedBy: account.email ?? undefined,
      status: 0,
      bytesSent: 0,
      blobs: blobsOf(body).map(({ where, owner }) => ({ where, owner })),
      turnState: undefined
    }
    backend.requests.push(rec)
    const send = async (message: unknown): Promise<void> => {
      const text = JSON.stringify(message)
      await new Promise<void>((resolve, reject) => { ws.send(text, (err) => { if (err == null) resolve(); else reject(err) }) })
      rec.bytesSent += Buffer.byteLength(text)
    }
    const fail = (status: number, error: unknown, headers: Record<string, string>): Promise<void> => {
      rec.status = status
      return send({ type: 'error', status, error: (error as { error?: unknown }).error ?? error, headers })
    }
    if (type !== 'response.create') return fail(400, { error: { type: 'invalid_request_error', message: `unknown frame type ${String(type)}` } }, {})
    const previous = body.previous_response_id
    if (previous !== undefined && previous !== null && !completed.has(String(previous))) {
      return fail(400, { error: { type: 'invalid_request_error', code: 'previous_response_not_found', message: `Previous response with id '${String(previous)}' not found.` } }, {})
    }
    const decision = decide(account, body, false, false)
    if (decision.kind === 'hang') return
    if (decision.kind === 'reply') return fail(decision.status, decision.body, decision.headers)
    rec.status = 200
    const events = body.generate === false
      ? turnEvents({ accountId: account.accountId, model: String(body.model ?? 'gpt-5-codex'), text: '', deltas: 1, inputTokens: 1, createdAt: state.nowSec() }).filter((event) => event.type === 'response.created' || event.type === 'response.completed')
      : eventsFor(rec, account, body, decision.step)
    const delayMs = decision.step?.kind === 'slow' ? decision.step.eventDelayMs : backend.streamOptions.eventDelayMs
    for (let i = 0; i < events.length; i++) {
      if (decision.step?.kind === 'drop' && i >= decision.step.afterEvents) {
        ws.terminate()
        return
      }
      if (i > 0) await sleep(delayMs, signal)
      if (ws.readyState !== ws.OPEN) return
      const event = events[i]!
      if (event.type === 'response.completed') completed.add(String((event.data.response as { id: string }).id))
      await send(event.data)
    }
  }

  async function handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (!url.pathname.startsWith('/backend-api/')) return false
    const raw = await readBody(req)
    const accountHeader = req.headers['chatgpt-account-id']
    const turnStateHeader = req.headers['x-codex-turn-state']
    const rec: RecordedRequest = {
      transport: 'http',
      method: req.method ?? '',
      path: url.pathname + url.search,
      headers: req.headers,
      body: null,
      rawBody: raw,
      accountId: typeof accountHeader === 'string' ? accountHeader : undefined,
      servedBy: undefined,
      status: 0,
      bytesSent: 0,
      blobs: [],
      turnState: typeof turnStateHeader === 'string' ? turnStateHeader : undefined
    }
    backend.requests.push(rec)
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      rec.status = status
      sendJson(res, status, body, headers)
    }
    let undecodable: Error | null = null
    try {
      const text = decodeBody(raw, req.headers['content-encoding']).toString('utf8')
      rec.body = text === '' ? null : parseJson(text) ?? null
      rec.blobs = blobsOf(rec.body).map(({ where, owner }) => ({ where, owner }))
    } catch (err) {
      undecodable = err as Error
    }
    if (url.pathname.startsWith('/backend-api/codex/') && activeOutage() !== null) {
      backend.outageRequests += 1
      const o = outage!
      if (o.mode === 'status') reply(o.status, o.body)
      else if (o.mode === 'reset') res.destroy()
      return true
    }
    if (undecodable !== null) {
      reply(415, { detail: undecodable.message })
      return true
    }

    const route = `${rec.method} ${url.pathname.slice('/backend-api'.length)}`
    const known = ['POST /codex/responses', 'POST /codex/responses/compact', 'GET /codex/models', 'GET /wham/usage']
    if (!known.includes(route)) {
      reply(404, { detail: 'Not Found' })
      return true
    }
    const auth = authenticate(req)
    if ('error' in auth) {
      reply(401, auth.error)
      return true
    }
    rec.servedBy = auth.email
    switch (route) {
      case 'POST /codex/responses': await responses(res, rec, auth, false); break
      case 'POST /codex/responses/compact': await responses(res, rec, auth, true); break
      case 'GET /codex/models':
        reply(200, { models: [{ slug: 'gpt-5.3-codex', display_name: 'gpt-5.3-codex', supported_in_api: true, visibility: 'list' }] }, quotaHeaders(auth.accountId, null))
        break
      case 'GET /wham/usage': reply(200, usage(auth.accountId)); break
    }
    return true
  }

  return { backend, handle, upgrade }
}
