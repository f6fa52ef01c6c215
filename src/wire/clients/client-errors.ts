/**
 * Errors in each client API's own shape, so each SDK raises its own error class with the message:
 * OpenAI `{"error":{"message","type","param","code"}}`, Anthropic `{"type":"error","error":{"type","message"}}`.
 */
export type ClientKind = 'openai' | 'anthropic'

export function clientError (kind: ClientKind, status: number, message: string, code: string | null = null, param: string | null = null): Record<string, unknown> {
  if (kind === 'anthropic') return { type: 'error', error: { type: anthropicType(status), message } }
  return { error: { message, type: openaiType(status), param, code } }
}

function openaiType (status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

function anthropicType (status: number): string {
  switch (status) {
    case 401: return 'authentication_error'
    case 403: return 'permission_error'
    case 404: return 'not_found_error'
    case 413: return 'request_too_large'
    case 429: return 'rate_limit_error'
    case 503:
    case 529: return 'overloaded_error'
    default: return status >= 500 ? 'api_error' : 'invalid_request_error'
  }
}

/** The message of an upstream error body: `{"detail"}`, `{"error":{"message"}}`, or the text itself. */
export function upstreamMessage (body: string, status: number): { message: string, code: string | null } {
  try {
    const parsed = JSON.parse(body) as { detail?: unknown, error?: { message?: unknown, code?: unknown, type?: unknown } }
    if (typeof parsed.detail === 'string') return { message: parsed.detail, code: null }
    const error = parsed.error
    if (error !== null && typeof error === 'object' && typeof error.message === 'string') {
      const code = typeof error.code === 'string' ? error.code : typeof error.type === 'string' ? error.type : null
      return { message: error.message, code }
    }
  } catch {}
  const text = body.trim().slice(0, 1000)
  return { message: text === '' ? `the backend answered ${status}` : text, code: null }
}

/** The HTTP status a failed answer (a `response.failed` code) gets when nothing was sent yet. */
export function failureStatus (code: string): number {
  if (['context_length_exceeded', 'invalid_prompt', 'cyber_policy'].includes(code)) return 400
  if (['rate_limit_exceeded', 'usage_limit_reached', 'insufficient_quota', 'usage_not_included'].includes(code)) return 429
  if (['server_is_overloaded', 'slow_down'].includes(code)) return 503
  return 502
}
