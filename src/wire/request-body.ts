import { markAcrossSeam } from './byte-seam.js'

/**
 * A request body as the chunks it arrived in (or, for a body written here, as it was written).
 * Bodies are held whole (failover may send them again), and a Codex turn's body is the whole
 * conversation, megabytes: joining its chunks into one buffer would cost a fresh allocation and a
 * pass over every byte per turn, the biggest part of what the pool added to such a turn. What the
 * pool reads of a body on the common path is a byte search (the conversation's key, whether it
 * carries encrypted items, the model), which runs over the chunks; the rare paths that rewrite a
 * body ask for it whole.
 */
export class RequestBody {
  /** In bytes. */
  readonly length: number
  private parts: readonly BodyChunk[]
  /** Whether a chunk is text: a body this service wrote (a translated request), never searched on the common path. */
  private hasText = false

  constructor (chunks: readonly BodyChunk[]) {
    this.parts = chunks
    let length = 0
    for (const chunk of chunks) {
      if (typeof chunk === 'string') {
        this.hasText = true
        length += Buffer.byteLength(chunk)
      } else {
        length += chunk.length
      }
    }
    this.length = length
  }

  static of (bytes: Buffer): RequestBody {
    return new RequestBody([bytes])
  }

  /** The chunks, in order: what is written upstream. */
  get chunks (): readonly BodyChunk[] {
    return this.parts
  }

  /** The offset of the first `pattern` in the body, or -1; found where it straddles two chunks too. */
  indexOf (pattern: Buffer): number {
    if (this.hasText) return this.whole().indexOf(pattern)
    const parts = this.parts as readonly Buffer[]
    // A chunk between two others that is shorter than the pattern could hide one spread over three
    // chunks: rare (small chunks are gathered as they arrive), so then the body is searched whole.
    for (let i = 1; i < parts.length - 1; i++) {
      if (parts[i]!.length < pattern.length) return this.whole().indexOf(pattern)
    }
    let offset = 0
    for (let i = 0; i < parts.length; i++) {
      const chunk = parts[i]!
      const at = chunk.indexOf(pattern)
      if (at !== -1) return offset + at
      const next = parts[i + 1]
      if (next !== undefined) {
        const across = markAcrossSeam(chunk, next, pattern)
        if (across !== -1) return offset + across
      }
      offset += chunk.length
    }
    return -1
  }

  /** Bytes `start` to `end` (clamped to the body) as one buffer: a view when one chunk holds them, else a copy of them. */
  slice (start: number, end: number): Buffer {
    end = Math.min(end, this.length)
    if (start >= end) return Buffer.alloc(0)
    if (this.hasText) return this.whole().subarray(start, end)
    let offset = 0
    let copy: Buffer | null = null
    for (const chunk of this.parts as readonly Buffer[]) {
      const chunkEnd = offset + chunk.length
      if (chunkEnd > start) {
        if (copy === null && end <= chunkEnd) return chunk.subarray(start - offset, end - offset)
        copy ??= Buffer.allocUnsafe(end - start)
        const from = Math.max(start, offset)
        chunk.copy(copy, from - start, from - offset, Math.min(end, chunkEnd) - offset)
        if (end <= chunkEnd) return copy
      }
      offset = chunkEnd
    }
    return copy ?? Buffer.alloc(0)
  }

  /** The body as one buffer (rare paths: a body rewritten without foreign blobs); joined once, then kept so. */
  whole (): Buffer {
    const parts = this.parts
    if (parts.length === 1 && typeof parts[0] !== 'string') return parts[0]!
    const joined = joinedBytes(parts, this.length)
    this.parts = [joined]
    this.hasText = false
    return joined
  }
}

/**
 * A body's chunk: bytes, or text (UTF-8 on the wire). A body written here (a translated request)
 * is its JSON structure as text between the client's long strings as bytes: the text goes to the
 * socket as it is, where turning it into buffers first cost an allocation and a copy per piece.
 */
export type BodyChunk = Buffer | string

/** Chunks joined into one buffer (`length`: their size in bytes, when known). */
export function joinedBytes (chunks: readonly BodyChunk[], length?: number): Buffer {
  return Buffer.concat(chunks.map((chunk) => typeof chunk === 'string' ? Buffer.from(chunk) : chunk), length)
}

/**
 * Bodies up to this size are kept as the chunks they arrive in; bigger ones go into one buffer of
 * their own. Held as chunks, a body costs no second allocation and no pass over its bytes (a Codex
 * turn's body is its whole conversation, megabytes); but the allocator keeps the memory of many
 * small freed pieces, so after a few bodies of tens of megabytes the process would stay that big,
 * where one large buffer goes back to the system as soon as it is freed.
 */
export const CHUNKED_UP_TO = 8 * 1024 * 1024
/** Chunks smaller than this are copied together into pieces of STAGING_BYTES: a body sent a few bytes at a time is not held as thousands of tiny buffers, each with its own overhead. */
const SMALL_CHUNK = 16 * 1024
const STAGING_BYTES = 64 * 1024

/**
 * Puts a body together as it arrives. With a declared length over CHUNKED_UP_TO (or `oneBuffer`,
 * for a caller that wants one buffer) the bytes are copied into a buffer of that size as they come,
 * so each chunk is let go at once, unless the body came whole in one chunk of its own. Otherwise
 * chunks are kept as they are (Node copies each body chunk out of the socket's read buffer, so a
 * chunk holds only its own bytes), small ones gathered, and a view into a larger buffer copied so
 * it does not keep that buffer alive. A body of no declared length that grows past CHUNKED_UP_TO
 * is joined at its end.
 */
export class BodyAssembly {
  private readonly chunks: Buffer[] = []
  private whole: Buffer | null = null
  private staging: Buffer | null = null
  private staged = 0
  private received = 0

  constructor (private readonly declared: number | null, private readonly oneBuffer = false) {}

  get length (): number {
    return this.received
  }

  add (chunk: Buffer): void {
    const declared = this.declared
    if (declared !== null && (declared > CHUNKED_UP_TO || this.oneBuffer)) {
      if (this.received === 0 && chunk.length === declared && ownsItsMemory(chunk)) this.chunks.push(chunk)
      else (this.whole ??= Buffer.allocUnsafe(declared)).set(chunk, this.received)
    } else if (chunk.length >= SMALL_CHUNK) {
      this.flushStaging()
      this.chunks.push(ownBytes(chunk))
    } else {
      if (this.staging !== null && this.staged + chunk.length > this.staging.length) this.flushStaging()
      this.staging ??= Buffer.allocUnsafe(STAGING_BYTES)
      this.staging.set(chunk, this.staged)
      this.staged += chunk.length
    }
    this.received += chunk.length
  }

  finish (): RequestBody {
    if (this.whole !== null) return RequestBody.of(this.whole)
    this.flushStaging()
    const body = new RequestBody(this.chunks)
    if (this.oneBuffer || (this.declared === null && body.length > CHUNKED_UP_TO)) body.whole()
    return body
  }

  private flushStaging (): void {
    if (this.staging === null) return
    // What was gathered (copied out at its size when it fills half the piece or less).
    this.chunks.push(ownBytes(this.staging.subarray(0, this.staged)))
    this.staging = null
    this.staged = 0
  }
}

function ownsItsMemory (bytes: Buffer): boolean {
  return bytes.buffer.byteLength <= 2 * bytes.length
}

/**
 * `bytes`, or a copy of their own size when they are a view into a buffer more than twice as
 * large: kept for the length of a request, a view keeps all of that buffer alive.
 */
export function ownBytes (bytes: Buffer): Buffer {
  if (ownsItsMemory(bytes)) return bytes
  const copy = Buffer.allocUnsafeSlow(bytes.length)
  bytes.copy(copy)
  return copy
}
