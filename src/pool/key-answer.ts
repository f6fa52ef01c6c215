import type { ClientKey, KeyVerdict } from './client-keys.js'
import type { PoolAnswer } from './exhausted-answer.js'

/**
 * The answer to a key that may not spend the pool now, in the Responses API's error shape. Over its
 * daily limit it is a 429 `usage_limit_reached` with `resets_at`, as the backend's own (Codex stops
 * and says when); an expired key is a 401, like a wrong one.
 */
export function keyRefusal (key: ClientKey, verdict: Exclude<KeyVerdict, { kind: 'ok' }>, now: number): PoolAnswer {
  if (verdict.kind === 'expired') {
    return {
      status: 401,
      headers: { 'www-authenticate': 'Bearer' },
      body: { error: { type: 'unauthorized', code: 'key_expired', message: `the API key "${key.name}" expired at ${new Date(verdict.expiresAt).toISOString()}` } }
    }
  }
  const seconds = Math.max(1, Math.ceil((verdict.resetsAt - now) / 1000))
  const resets = new Date(verdict.resetsAt).toISOString()
  return {
    status: 429,
    headers: { 'retry-after': String(seconds) },
    body: {
      error: {
        type: 'usage_limit_reached',
        code: 'key_limit_reached',
        message: `The API key "${key.name}" has used its daily limit of ${verdict.limit.toLocaleString('en')} tokens (${verdict.used.toLocaleString('en')} used today); it resets at ${resets}`,
        key: key.name,
        limit: verdict.limit,
        used: verdict.used,
        resets_at: Math.ceil(verdict.resetsAt / 1000),
        resets_in_seconds: seconds
      }
    }
  }
}
