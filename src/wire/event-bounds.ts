/**
 * Where an SSE event begins and ends in a chunk's bytes. An event ends at a blank line: a line feed
 * followed by another line's end (`\n\n`, or `\n\r\n`, which also covers CRLF lines).
 */
const EVENT_END_LF = Buffer.from('\n\n')
const EVENT_END_CRLF = Buffer.from('\n\r\n')
const CR = 0x0d

/**
 * How much of an event tells it apart: the backend names an event on its first line, or puts its
 * type first in its data (after a comment or an id line, at most).
 */
export const EVENT_HEAD_BYTES = 512

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
