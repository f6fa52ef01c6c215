/**
 * When does an exhausted account come back? The backend says it in several places, depending on
 * its version: the 429 body (`resets_at`, `resets_in_seconds`), the quota headers
 * (`x-codex-{primary,secondary}-reset-at`, `…-reset-after-seconds`) and a `response.failed`
 * event in the stream. One rule picks among them, in this order of precedence:
 *
 *   1. body `resets_at`            (absolute, the most direct statement)
 *   2. body `resets_in_seconds`    (relative to when the answer arrived)
 *   3. header `x-codex-*-reset-at` (absolute; of the exhausted window, else the earliest)
 *   4. header `x-codex-*-reset-after-seconds` (relative; same window choice)
 *
 * A value in the past or more than a year ahead is implausible and skipped; when nothing
 * plausible is left, the caller falls back to the configured cooldown.
 */
export type Headers = Record<string, string | string[] | undefined>

export interface ResetSignal {
  at: number
  source: string
}

const MAX_AHEAD_MS = 366 * 24 * 3600 * 1000
const WINDOWS = ['primary', 'secondary'] as const

export function header (headers: Headers, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

function numeric (value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null
  if (typeof value === 'string' && value.trim() !== '') {
    const parsed = Number(value)
    return Number.isFinite(parsed) ? parsed : null
  }
  return null
}

function plausible (at: number, now: number): boolean {
  return at > now && at - now <= MAX_AHEAD_MS
}

/** The reset fields of an error object (`{"error":{…}}` in a 429 body or `response.error` in a stream). */
export function resetFromErrorObject (error: Record<string, unknown> | null, now: number, origin: string): ResetSignal | null {
  if (error === null) return null
  const resetsAt = numeric(error.resets_at)
  if (resetsAt !== null && plausible(resetsAt * 1000, now)) return { at: resetsAt * 1000, source: `${origin}.resets_at` }
  const resetsIn = numeric(error.resets_in_seconds)
  if (resetsIn !== null && plausible(now + resetsIn * 1000, now)) return { at: now + resetsIn * 1000, source: `${origin}.resets_in_seconds` }
  return null
}

/**
 * The reset time carried by the quota headers, preferring the window that is used up. `prefix`
 * names the limit family (`x-codex`, or e.g. `x-codex-bengalfox` for a model-scoped limit).
 */
export function resetFromHeaders (headers: Headers, now: number, prefix = 'x-codex'): ResetSignal | null {
  const candidates: Array<ResetSignal & { exhausted: boolean, rank: number }> = []
  for (const window of WINDOWS) {
    const used = numeric(header(headers, `${prefix}-${window}-used-percent`))
    const exhausted = used !== null && used >= 100
    const resetAt = numeric(header(headers, `${prefix}-${window}-reset-at`))
    if (resetAt !== null && plausible(resetAt * 1000, now)) {
      candidates.push({ at: resetAt * 1000, source: `header.${prefix}-${window}-reset-at`, exhausted, rank: 0 })
      continue
    }
    const after = numeric(header(headers, `${prefix}-${window}-reset-after-seconds`))
    if (after !== null && plausible(now + after * 1000, now)) {
      candidates.push({ at: now + after * 1000, source: `header.${prefix}-${window}-reset-after-seconds`, exhausted, rank: 1 })
    }
  }
  if (candidates.length === 0) return null
  candidates.sort((a, b) => Number(b.exhausted) - Number(a.exhausted) || a.rank - b.rank || a.at - b.at)
  const best = candidates[0]!
  return { at: best.at, source: best.source }
}

/** The `error` object of a JSON error body, if any. */
export function errorObject (body: unknown): Record<string, unknown> | null {
  if (body === null || typeof body !== 'object') return null
  const error = (body as Record<string, unknown>).error
  return error !== null && typeof error === 'object' && !Array.isArray(error) ? error as Record<string, unknown> : null
}

export function parseJson (text: string | null): unknown {
  if (text === null || text === '') return null
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}
