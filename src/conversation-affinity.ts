/**
 * Which account served each conversation, so a conversation stays on its account (its encrypted
 * reasoning only decrypts there) and, when it must move, its old reasoning can be dropped.
 * Bounded: the least recently used conversations are forgotten first.
 */
export class ConversationAffinity {
  private readonly owners = new Map<string, string>()

  constructor (private readonly capacity = 10_000) {}

  get (conversation: string): string | undefined {
    const owner = this.owners.get(conversation)
    if (owner !== undefined) {
      // Map keeps insertion order: re-inserting marks it as recently used.
      this.owners.delete(conversation)
      this.owners.set(conversation, owner)
    }
    return owner
  }

  set (conversation: string, accountId: string): void {
    this.owners.delete(conversation)
    this.owners.set(conversation, accountId)
    if (this.owners.size > this.capacity) this.owners.delete(this.owners.keys().next().value as string)
  }

  get size (): number {
    return this.owners.size
  }
}

const MAX_KEY_LENGTH = 200
const CACHE_KEY_FIELD = Buffer.from('"prompt_cache_key"')

/**
 * The conversation a request belongs to: the Codex CLI's `session-id` header (older clients:
 * `session_id`, or `thread-id`), else the body's `prompt_cache_key`, found without parsing the body.
 */
export function conversationKey (headers: Record<string, string | string[] | undefined>, body: Buffer | undefined): string | null {
  for (const name of ['session-id', 'session_id', 'thread-id']) {
    const value = headers[name]
    if (typeof value === 'string' && value !== '' && value.length <= MAX_KEY_LENGTH) return value
  }
  if (body === undefined) return null
  const at = body.indexOf(CACHE_KEY_FIELD)
  if (at === -1) return null
  const match = /^"prompt_cache_key"\s*:\s*"([^"\\]{1,200})"/.exec(body.subarray(at, at + MAX_KEY_LENGTH + 40).toString('utf8'))
  return match === null ? null : match[1]!
}

const ENCRYPTED_FIELD = Buffer.from('"encrypted_content"')

/** Does the body replay encrypted reasoning at all? (A byte search; the body is not parsed.) */
export function carriesEncryptedReasoning (body: Buffer | undefined): boolean {
  return body !== undefined && body.indexOf(ENCRYPTED_FIELD) !== -1
}

/**
 * The body without its `reasoning` input items. Encrypted reasoning is bound to the account that
 * made it: sent as another account the whole turn fails with `invalid_encrypted_content`. Dropping
 * the items costs the model its earlier private reasoning, not the conversation.
 * Returns null when there is nothing to drop or the body is not a JSON object with an `input` list.
 */
export function withoutReasoning (body: Buffer): Buffer | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    return null
  }
  if (parsed === null || typeof parsed !== 'object' || !Array.isArray((parsed as { input?: unknown }).input)) return null
  const request = parsed as { input: unknown[] }
  const kept = request.input.filter((item) => (item as { type?: unknown } | null)?.type !== 'reasoning')
  if (kept.length === request.input.length) return null
  request.input = kept
  return Buffer.from(JSON.stringify(request))
}
