import { createHash } from 'node:crypto'
import { markAcrossSeam } from '../wire/byte-seam.js'
import type { RequestBody } from '../wire/request-body.js'
import { BoundedMap } from './bounded-map.js'

/**
 * Encrypted items (`reasoning`, `compaction` and `encrypted_content` parts, protocol §5.4) only
 * decrypt under the account that made them: sent as another account, the whole turn is refused
 * (`invalid_encrypted_content`). The pool learns which account made each blob as answers stream
 * by — a short fingerprint per blob, never the blob — so that a conversation that moves account
 * drops exactly the foreign blobs up front, and keeps the new account's own.
 */
const FIELD = Buffer.from('"encrypted_content"')
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COLON = 0x3a
/** A value still open at a chunk's end is carried into the next chunk up to this size. */
const MAX_PENDING = 8 * 1024 * 1024

/** Fingerprint of one blob's text: 128 bits of SHA-256, enough to tell blobs apart, useless to anyone else. */
export function blobFingerprint (value: string | Buffer): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 22)
}

function isSpace (byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09
}

/**
 * Calls `onBlob` with the fingerprint of every `"encrypted_content": "…"` string in a JSON text,
 * found by a byte scan (nothing is parsed). Returns the offset of a field whose value runs past
 * the end of `text`, or -1.
 */
export function scanBlobs (text: Buffer, onBlob: (fingerprint: string) => void): number {
  let at = text.indexOf(FIELD)
  while (at !== -1) {
    let i = at + FIELD.length
    while (isSpace(text[i])) i++
    if (i >= text.length) return at
    if (text[i] !== COLON) {
      at = text.indexOf(FIELD, i)
      continue
    }
    i++
    while (isSpace(text[i])) i++
    if (i >= text.length) return at
    if (text[i] !== QUOTE) { // null, or not a string: nothing to learn
      at = text.indexOf(FIELD, i)
      continue
    }
    const start = i + 1
    let end = start
    let escaped = false
    for (;;) {
      end = text.indexOf(QUOTE, end)
      if (end === -1) return at
      let backslashes = 0
      while (text[end - 1 - backslashes] === BACKSLASH) backslashes++
      if (backslashes % 2 === 0) break
      escaped = true
      end++
    }
    const raw = text.subarray(start, end)
    // Escapes are decoded so that the same blob matches however its JSON was written.
    onBlob(blobFingerprint(escaped || raw.includes(BACKSLASH) ? JSON.parse(`"${raw.toString('utf8')}"`) as string : raw))
    at = text.indexOf(FIELD, end + 1)
  }
  return -1
}

/** Does the body carry encrypted items at all? (A byte search; the body is not parsed.) */
export function carriesBlobs (body: RequestBody | undefined): boolean {
  return body !== undefined && body.indexOf(FIELD) !== -1
}

/** The fingerprints of the blobs a request body carries. */
export function blobsIn (body: Buffer): string[] {
  const found: string[] = []
  scanBlobs(body, (fingerprint) => { found.push(fingerprint) })
  return found
}

/**
 * Watches a passing answer for blobs, chunk by chunk: a value cut by a chunk's end is carried
 * into the next chunk; chunks without the field cost one byte search and no copy.
 */
export class BlobLearner {
  private previous: Buffer | null = null
  private pending: Buffer | null = null

  constructor (private readonly onBlob: (fingerprint: string) => void) {}

  push (chunk: Buffer): void {
    let text = chunk
    if (this.pending !== null) {
      text = Buffer.concat([this.pending, chunk])
      this.pending = null
    } else if (this.previous !== null) {
      const split = markAcrossSeam(this.previous, chunk, FIELD)
      if (split !== -1) text = Buffer.concat([this.previous.subarray(split), chunk])
    }
    const open = scanBlobs(text, this.onBlob)
    if (open !== -1 && text.length - open <= MAX_PENDING) this.pending = Buffer.from(text.subarray(open))
    this.previous = open === -1 ? chunk : null
  }
}

/** Which account made each blob seen lately (bounded: the least recently seen are forgotten). */
export class BlobOwners extends BoundedMap<string> {
  constructor (capacity = 100_000) {
    super(capacity)
  }

  /** Has any blob in `fingerprints` been made by an account other than `account`? */
  anyForeign (fingerprints: readonly string[], account: string): boolean {
    for (const fingerprint of fingerprints) {
      const owner = this.peek(fingerprint)
      if (owner !== undefined && owner !== account) return true
    }
    return false
  }
}

/** Input item types whose own `encrypted_content` is bound to an account. */
const BOUND_ITEMS = new Set(['reasoning', 'compaction', 'compaction_summary', 'context_compaction'])

/**
 * The body without the blobs `drop` picks: bound items are removed, `encrypted_content` parts are
 * taken out of `output`/`content` lists (an item left with no content goes too; an emptied tool
 * output becomes ""). Returns null when nothing is dropped or the body is not a Responses request.
 */
export function withoutBlobs (body: Buffer, drop: (fingerprint: string) => boolean): { body: Buffer, dropped: number } | null {
  let request: { input?: unknown }
  try {
    request = JSON.parse(body.toString('utf8')) as { input?: unknown }
  } catch {
    return null
  }
  if (request === null || typeof request !== 'object' || !Array.isArray(request.input)) return null
  let dropped = 0
  const isDropped = (part: unknown): boolean => {
    const { type, encrypted_content: content } = (part ?? {}) as Record<string, unknown>
    return type === 'encrypted_content' && typeof content === 'string' && drop(blobFingerprint(content))
  }
  /** The parts left, or null when none is dropped. */
  const remaining = (parts: unknown[]): unknown[] | null => {
    const left = parts.filter((part) => !isDropped(part))
    if (left.length === parts.length) return null
    dropped += parts.length - left.length
    return left
  }
  const kept: unknown[] = []
  for (const item of request.input as unknown[]) {
    const fields = (item ?? {}) as Record<string, unknown>
    if (typeof fields.type === 'string' && BOUND_ITEMS.has(fields.type) && typeof fields.encrypted_content === 'string' && drop(blobFingerprint(fields.encrypted_content))) {
      dropped++
      continue
    }
    const output = Array.isArray(fields.output) ? remaining(fields.output) : null
    if (output !== null) fields.output = output.length === 0 ? '' : output
    const content = Array.isArray(fields.content) ? remaining(fields.content) : null
    if (content !== null) {
      if (content.length === 0) continue
      fields.content = content
    }
    kept.push(item)
  }
  if (dropped === 0) return null
  request.input = kept
  return { body: Buffer.from(JSON.stringify(request)), dropped }
}
