import type { RequestBody } from '../wire/request-body.js'
import { BoundedMap } from './bounded-map.js'

/**
 * Which account served each conversation, so a conversation stays on its account (its encrypted
 * items only decrypt there), and whether it ever moved: only a conversation that moved, or one
 * not seen before, can carry another account's blobs. Bounded: the least recently used are forgotten.
 */
export class ConversationAffinity {
  private readonly owners: BoundedMap<string>
  private readonly moved: BoundedMap<true>

  constructor (capacity = 10_000) {
    this.owners = new BoundedMap(capacity)
    this.moved = new BoundedMap(capacity)
  }

  get (conversation: string): string | undefined {
    return this.owners.get(conversation)
  }

  hasMoved (conversation: string): boolean {
    return this.moved.peek(conversation) === true
  }

  set (conversation: string, accountId: string): void {
    const previous = this.owners.peek(conversation)
    if (previous !== undefined && previous !== accountId) this.moved.set(conversation, true)
    this.owners.set(conversation, accountId)
  }

  get size (): number {
    return this.owners.size
  }
}

const MAX_FIELD_LENGTH = 200

/**
 * A top-level string field of a JSON body, found by a byte search without parsing the body: the
 * first `"name": "value"` (values with escapes are skipped). Enough for `prompt_cache_key` and
 * `model`, which Codex writes near the top.
 */
export function stringField (body: RequestBody | undefined, field: Buffer): string | null {
  if (body === undefined) return null
  const at = body.indexOf(field)
  if (at === -1) return null
  const match = /^"[a-z_]+"\s*:\s*"([^"\\]{1,200})"/.exec(body.slice(at, at + field.length + MAX_FIELD_LENGTH + 20).toString('utf8'))
  return match === null ? null : match[1]!
}

const CACHE_KEY_FIELD = Buffer.from('"prompt_cache_key"')
const MODEL_FIELD = Buffer.from('"model"')

/**
 * The conversation a request belongs to: the Codex CLI's `session-id` header (older clients:
 * `session_id`, or `thread-id`), else the body's `prompt_cache_key`.
 */
export function conversationKey (headers: Record<string, string | string[] | undefined>, body: RequestBody | undefined): string | null {
  for (const name of ['session-id', 'session_id', 'thread-id']) {
    const value = headers[name]
    if (typeof value === 'string' && value !== '' && value.length <= MAX_FIELD_LENGTH) return value
  }
  return stringField(body, CACHE_KEY_FIELD)
}

/** The request's model, e.g. `gpt-5-codex` (read only when a model-scoped limit makes it matter). */
export function requestModel (body: RequestBody | undefined): string | null {
  return stringField(body, MODEL_FIELD)
}
