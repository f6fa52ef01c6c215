import { errorObject, header, parseJson, resetFromErrorObject, resetFromHeaders, type Headers } from './reset-signals.js'

/**
 * Whose fault an upstream answer is, and so what it does to the account that sent it
 * (design.md, "The failover policy"):
 * - `deliver`: the client's answer (2xx, or a 4xx that is the request's own fault);
 * - `quota`: a usage limit with a known reset time: rest the account until then — the whole
 *   account, or only the models of one limit family (`limit`);
 * - `account`: the account's own fault (401, 403, 429 without a reset): the seed's ladder,
 *   retry once → refresh → disable for the cooldown (`auth`: a 401 refreshes first);
 * - `upstream`: the backend's fault (5xx, overload, connection errors, timeouts): a short rest at
 *   most, and an outage when it hits several accounts. `fault` groups failures of the same kind.
 */
export type Verdict =
  | { kind: 'deliver' }
  | { kind: 'quota', resetsAt: number, source: string, reason: string, limit?: LimitFamily }
  | { kind: 'account', reason: string, auth?: boolean, egress?: boolean }
  | { kind: 'upstream', reason: string, fault: string }

/** A model-scoped limit (protocol §5.1): `family` as in `x-codex-active-limit`, `name` its display name. */
export interface LimitFamily {
  family: string
  name: string
}

export interface UpstreamAnswer {
  status: number
  headers: Headers
  /** The (bounded) body text, read only for statuses that may blame the account. */
  errorBody: string | null
  /** A `response.failed` error that arrived in a 200 stream before any content (held back from the client). */
  streamError?: Record<string, unknown> | null
}

/** Statuses whose body the proxy must read before deciding; every other answer streams through untouched. */
export function needsInspection (status: number): boolean {
  return status === 401 || status === 403 || status === 429 || status >= 500
}

/** Error codes that mean "the backend is at capacity", in a 5xx body or a `response.failed` event. */
const OVERLOAD_CODES = new Set(['server_is_overloaded', 'slow_down'])
/** Stream error codes that mean "this account is out of quota for now". */
const QUOTA_STREAM_CODES = new Set(['usage_limit_reached', 'rate_limit_exceeded', 'insufficient_quota'])

export function classifyAnswer (answer: UpstreamAnswer, now: number): Verdict {
  if (answer.streamError != null) return classifyEarlyStreamFailure(answer.streamError, now)
  if (!needsInspection(answer.status)) return { kind: 'deliver' }
  const body = parseJson(answer.errorBody)
  const error = errorObject(body)
  const code = describeCode(body, error)
  const reason = `HTTP ${answer.status}${code === null ? '' : ` ${code}`}`
  if (answer.status >= 500) {
    const overloaded = typeof error?.code === 'string' && OVERLOAD_CODES.has(error.code)
    return { kind: 'upstream', reason, fault: overloaded ? 'overloaded' : `http_${answer.status}` }
  }
  if (answer.status === 429 && (error?.type === 'usage_limit_reached' || error?.code === 'usage_limit_reached')) {
    const limit = limitFamily(answer.headers)
    const reset = resetFromErrorObject(error, now, 'body') ?? resetFromHeaders(answer.headers, now, limit === undefined ? 'x-codex' : familyPrefix(limit.family))
    if (reset !== null) {
      const verdict: Verdict = { kind: 'quota', resetsAt: reset.at, source: reset.source, reason: 'usage_limit_reached' }
      if (limit !== undefined) verdict.limit = limit
      return verdict
    }
  }
  return answer.status === 401 ? { kind: 'account', reason, auth: true } : { kind: 'account', reason }
}

/**
 * The account's own egress proxy failed (refused, unknown, timed out, refused the tunnel): its
 * fault, not the upstream's, and not a token problem (a refresh would go through the same proxy).
 * The message never holds the proxy's credentials.
 */
export class ProxyUnreachableError extends Error {
  readonly code = 'CODEX_EQ_PROXY_UNREACHABLE'
  constructor (detail: string) {
    super(`proxy unreachable: ${detail}`)
    this.name = 'ProxyUnreachableError'
  }
}

export function classifyError (err: unknown): Verdict {
  if (err instanceof ProxyUnreachableError) return { kind: 'account', reason: err.message, egress: true }
  const error = err as { code?: unknown, message?: unknown }
  const code = typeof error?.code === 'string' ? error.code : null
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return { kind: 'upstream', reason: 'upstream timed out before answering', fault: 'timeout' }
  return { kind: 'upstream', reason: `upstream unreachable (${code ?? String(error?.message ?? err)})`, fault: 'unreachable' }
}

/** `x-` + the family id lowercased with `_` → `-`: the prefix of that family's headers. */
export function familyPrefix (family: string): string {
  return `x-${family.toLowerCase().replace(/_/g, '-')}`
}

/** The limit family a 429 is about when it is model-scoped (its `-limit-name` is not `codex`). */
function limitFamily (headers: Headers): LimitFamily | undefined {
  const family = header(headers, 'x-codex-active-limit')?.trim()
  if (family === undefined || family === '' || family.toLowerCase() === 'codex') return undefined
  const name = header(headers, `${familyPrefix(family)}-limit-name`)?.trim()
  if (name === undefined || name === '' || name.toLowerCase() === 'codex') return undefined
  return { family, name: name.slice(0, 120) }
}

function describeCode (body: unknown, error: Record<string, unknown> | null): string | null {
  for (const value of [error?.code, error?.type, (body as Record<string, unknown> | null)?.detail]) {
    if (typeof value === 'string' && value !== '') return value.slice(0, 120)
  }
  return null
}

/**
 * A `response.failed` that came before any content, while the client has seen nothing: an
 * overload is the upstream's fault and a usage limit the account's quota — both fail over; any
 * other error (context too long, invalid prompt…) is the request's answer and is delivered.
 */
function classifyEarlyStreamFailure (error: Record<string, unknown>, now: number): Verdict {
  const code = typeof error.code === 'string' ? error.code : 'unknown'
  if (OVERLOAD_CODES.has(code)) return { kind: 'upstream', reason: `stream failed: ${code}`, fault: 'overloaded' }
  if (!QUOTA_STREAM_CODES.has(code)) return { kind: 'deliver' }
  const verdict = classifyStreamFailure(error, now)
  return verdict.kind === 'quota' ? verdict : { kind: 'account', reason: `stream failed: ${code}` }
}

/**
 * A `response.failed` event in a stream that already reached the client: too late to fail over
 * this turn, but a quota error with a reset rests the account so the next turn goes elsewhere.
 * The reset comes from the error's `resets_at`/`resets_in_seconds`, else "try again in Ns".
 */
export function classifyStreamFailure (error: Record<string, unknown>, now: number): Verdict {
  const code = typeof error.code === 'string' ? error.code : 'unknown'
  if (QUOTA_STREAM_CODES.has(code)) {
    const reset = resetFromErrorObject(error, now, 'stream')
    if (reset !== null) return { kind: 'quota', resetsAt: reset.at, source: reset.source, reason: code }
    const wait = typeof error.message === 'string' ? /try again in\s+(\d+(?:\.\d+)?)\s*(ms|s)\b/i.exec(error.message) : null
    if (wait !== null) {
      const ms = Number(wait[1]) * (wait[2]!.toLowerCase() === 'ms' ? 1 : 1000)
      if (ms > 0) return { kind: 'quota', resetsAt: now + ms, source: 'stream.message', reason: code }
    }
  }
  return { kind: 'account', reason: `stream failed: ${code}` }
}
