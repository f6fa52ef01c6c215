/**
 * Where an SSE event begins and ends in a chunk's bytes. An event ends at a blank line: a line feed
 * followed by another line's end (`\n\n`, or `\n\r\n`, which also covers CRLF lines).
 */
const EVENT_END_LF = Buffer.from('\n\n')
const EVENT_END_CRLF = Buffer.from('\n\r\n')
const CR = 0x0d

/** Where the event holding offset `at` ends (its blank line included); -1 when that is not in `chunk`. */
export function eventEnd (chunk: Buffer, at: number): number {
  const lf = chunk.indexOf(EVENT_END_LF, at)
  // Without a carriage return there is no CRLF ending to look for (a one-byte search is a memchr).
  const crlf = chunk.indexOf(CR, at) === -1 ? -1 : chunk.indexOf(EVENT_END_CRLF, at)
  if (lf === -1) return crlf === -1 ? -1 : crlf + 3
  return crlf === -1 || lf < crlf ? lf + 2 : crlf + 3
}

/**
 * The ends of a chunk's events, asked for in order (`after` never goes back): each blank line of
 * either kind is searched for once, however many events the chunk holds. Without a carriage return
 * in the chunk (the backend's own streams) only LF blank lines are looked for.
 */
export class EventEnds {
  private lf = -2
  private crlf: number

  constructor (private readonly chunk: Buffer) {
    this.crlf = chunk.indexOf(CR) === -1 ? -1 : -2
  }

  /** Where the event holding offset `at` ends (its blank line included); -1 when not in the chunk. */
  after (at: number): number {
    if (this.lf !== -1 && this.lf < at) this.lf = this.chunk.indexOf(EVENT_END_LF, at)
    if (this.crlf !== -1 && this.crlf < at) this.crlf = this.chunk.indexOf(EVENT_END_CRLF, at)
    if (this.lf === -1) return this.crlf === -1 ? -1 : this.crlf + 3
    return this.crlf === -1 || this.lf < this.crlf ? this.lf + 2 : this.crlf + 3
  }
}
