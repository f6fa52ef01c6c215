import { markAcrossSeam } from './byte-seam.js'

/**
 * A request body as the chunks it arrived in. Bodies are held whole (failover may send them
 * again), and a Codex turn's body is the whole conversation, megabytes: joining its chunks into
 * one buffer would cost a fresh allocation and a pass over every byte per turn, the biggest part
 * of what the pool added to such a turn. What the pool reads of a body on the common path is a
 * byte search (the conversation's key, whether it carries encrypted items, the model), which runs
 * over the chunks; the rare paths that rewrite a body ask for it whole.
 */
export class RequestBody {
  readonly length: number
  private parts: readonly Buffer[]

  constructor (chunks: readonly Buffer[]) {
    this.parts = chunks
    let length = 0
    for (const chunk of chunks) length += chunk.length
    this.length = length
  }

  static of (bytes: Buffer): RequestBody {
    return new RequestBody([bytes])
  }

  /** The chunks, in order: what is written upstream. */
  get chunks (): readonly Buffer[] {
    return this.parts
  }

  /** The offset of the first `pattern` in the body, or -1; found where it straddles two chunks too. */
  indexOf (pattern: Buffer): number {
    const parts = this.parts
    // A chunk shorter than the pattern could hide one spread over three chunks: rare (a chunked
    // upload in small pieces), so then the body is searched whole.
    if (parts.length > 1 && parts.some((chunk) => chunk.length < pattern.length)) return this.whole().indexOf(pattern)
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
    let offset = 0
    let copy: Buffer | null = null
    for (const chunk of this.parts) {
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
    if (this.parts.length === 1) return this.parts[0]!
    const joined = Buffer.concat(this.parts as Buffer[], this.length)
    this.parts = [joined]
    return joined
  }
}
