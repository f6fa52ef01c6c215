import { errorObject, parseJson, resetFromErrorObject, resetFromHeaders, type Headers } from './reset-signals.js'

/**
 * What an upstream answer means for the account that sent it (the design's failover ladder):
 * - `deliver`: the client's answer (2xx, or a 4xx that is the request's own fault);
 * - `quota`: a usage limit with a known reset time: rest the account until then;
 * - `retry`: something blames the account or upstream (401, 403, 429 without reset, 5xx,
 *   network errors, timeouts): retry, refresh, then disable for the cooldown.
 */
export type Verdict =
  | { kind: 'deliver' }
  | { kind: 'quota', resetsAt: number, source: string, reason: string }
  | { kind: 'retry', reason: string }

export interface UpstreamAnswer {
  status: number
  headers: Headers
  /** The (bounded) body text, read only for statuses that may blame the account. */
  errorBody: string | null
}

/** Statuses whose body the proxy must read before deciding; every other answer streams through untouched. */
export function needsInspection (status: number): boolean {
  return status === 401 || status === 403 || status === 429 || status >= 500
}

export function classifyAnswer (answer: UpstreamAnswer, now: number): Verdict {
  if (!needsInspection(answer.status)) return { kind: 'deliver' }
  const body = parseJson(answer.errorBody)
  const error = errorObject(body)
  const code = describeCode(body, error)
  const reason = `HTTP ${answer.status}${code === null ? '' : ` ${code}`}`
  if (answer.status === 429 && (error?.type === 'usage_limit_reached' || error?.code === 'usage_limit_reached')) {
    const reset = resetFromErrorObject(error, now, 'body') ?? resetFromHeaders(answer.headers, now)
    if (reset !== null) return { kind: 'quota', resetsAt: reset.at, source: reset.source, reason: 'usage_limit_reached' }
  }
  return { kind: 'retry', reason }
}

export function classifyError (err: unknown): Verdict {
  const error = err as { code?: unknown, message?: unknown }
  const code = typeof error?.code === 'string' ? error.code : null
  const reason = code === 'UND_ERR_HEADERS_TIMEOUT' ? 'upstream timed out before answering' : `upstream unreachable (${code ?? String(error?.message ?? err)})`
  return { kind: 'retry', reason }
}

function describeCode (body: unknown, error: Record<string, unknown> | null): string | null {
  for (const value of [error?.code, error?.type, (body as Record<string, unknown> | null)?.detail]) {
    if (typeof value === 'string' && value !== '') return value.slice(0, 120)
  }
  return null
}

/** Stream error codes that mean "this account is out of quota for now". */
const QUOTA_STREAM_CODES = new Set(['usage_limit_reached', 'rate_limit_exceeded', 'insufficient_quota'])

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
  return { kind: 'retry', reason: `stream failed: ${code}` }
}
