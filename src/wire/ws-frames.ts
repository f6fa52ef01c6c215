import type { UpstreamAnswer } from '../pool/failover-policy.js'

/**
 * The Responses API over WebSocket (protocol §5.6): each turn is one `response.create` text frame;
 * the answer comes back as one text frame per event, ending with `response.completed`,
 * `response.failed`, `response.incomplete`, or an `error` frame `{type, status, error, headers}`
 * that Codex treats like an HTTP error of that status. Frames are told apart by their `type`
 * (the first field); only failures are parsed whole.
 */
const TYPE_FIELD = /"type"\s*:\s*"([^"]+)"/
/** Events that say nothing yet: while only these passed, the turn may still go to another account. */
const PRELUDE = new Set(['response.created', 'response.in_progress', 'codex.rate_limits'])
const TERMINAL = new Set(['response.completed', 'response.failed', 'response.incomplete', 'error'])

export function frameType (text: string): string | null {
  return TYPE_FIELD.exec(text.length > 512 ? text.slice(0, 512) : text)?.[1] ?? null
}

export function isPrelude (type: string | null): boolean {
  return type !== null && PRELUDE.has(type)
}

export function endsTurn (type: string | null): boolean {
  return type !== null && TERMINAL.has(type)
}

/** A client's turn: the frame as received (its bytes are what the pool re-sends) and its chain link. */
export interface TurnFrame {
  frame: Buffer
  previousResponseId: string | null
}

/** Reads a client frame; a string is the reason it is refused (answered with an `error` frame 400). */
export function readTurnFrame (data: Buffer): TurnFrame | string {
  let parsed: unknown
  try {
    parsed = JSON.parse(data.toString('utf8'))
  } catch {
    return 'a frame must be a JSON object'
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'a frame must be a JSON object'
  const frame = parsed as Record<string, unknown>
  if (frame.type !== 'response.create') return `unknown frame type ${JSON.stringify(frame.type ?? null).slice(0, 80)}: only response.create is understood`
  const previous = frame.previous_response_id
  return { frame: data, previousResponseId: typeof previous === 'string' && previous !== '' ? previous : null }
}

/**
 * What the failover policy sees of a turn that failed before its first content: an `error` frame
 * is an HTTP answer of its status (its body the `{"error":…}` part), a `response.failed` the
 * stream failure it is over HTTP.
 */
export function failureAnswer (text: string, headers: UpstreamAnswer['headers']): UpstreamAnswer | null {
  let frame: { type?: unknown, status?: unknown, error?: unknown, headers?: unknown, response?: { error?: unknown } }
  try {
    frame = JSON.parse(text) as typeof frame
  } catch {
    return null
  }
  if (frame.type === 'error') {
    const status = typeof frame.status === 'number' && frame.status >= 400 && frame.status <= 599 ? frame.status : 500
    const frameHeaders = frame.headers !== null && typeof frame.headers === 'object' ? frame.headers as UpstreamAnswer['headers'] : {}
    return { status, headers: { ...headers, ...frameHeaders }, errorBody: JSON.stringify({ error: frame.error ?? null }) }
  }
  if (frame.type === 'response.failed') {
    const error = frame.response?.error
    return { status: 200, headers, errorBody: null, streamError: error !== null && typeof error === 'object' ? error as Record<string, unknown> : {} }
  }
  return null
}

/** An HTTP-shaped answer (the pool's own, or an upstream failure passed on) as an `error` frame. */
export function errorFrame (status: number, headers: Record<string, string | string[] | undefined>, body: unknown): string {
  let error: unknown = null
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : body
  if (typeof text === 'string') {
    try {
      error = (JSON.parse(text) as { error?: unknown }).error ?? { message: text }
    } catch {
      error = { type: 'invalid_request_error', message: text }
    }
  } else {
    error = (text as { error?: unknown } | null)?.error ?? text
  }
  const flat: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value
  return JSON.stringify({ type: 'error', status, error, headers: flat })
}

/**
 * The answer to a turn chained (`previous_response_id`) to a response of an account that can no
 * longer serve: a `response.failed` Codex retries — on a new connection, with the whole history —
 * rather than an error that would end the turn (protocol §5.3, §5.6).
 */
export function chainMovedFrame (): string {
  const error = { code: 'conversation_moved', message: 'this conversation moved to another account of the pool: send the whole history again' }
  return JSON.stringify({ type: 'response.failed', response: { id: 'resp_conversation_moved', object: 'response', status: 'failed', error } })
}
