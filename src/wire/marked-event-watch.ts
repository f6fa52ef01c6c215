import { createParser, type EventSourceParser } from 'eventsource-parser'
import { markAcrossSeam } from './byte-seam.js'

/**
 * Watches a passing SSE stream for one kind of event without parsing the rest: each chunk is
 * searched for `mark` (a byte search), and only from there on is the stream parsed as SSE,
 * starting at the blank line before the mark: the events before it in that chunk are not looked
 * at. When the event holding the mark began in the chunk before, that chunk is parsed too.
 * `onEvent` gets each event from then on, as JSON, and answers true once it has what it wanted.
 */
const EVENT_END_LF = Buffer.from('\n\n')
const EVENT_END_CRLF = Buffer.from('\n\r\n')

export class MarkedEventWatch {
  private readonly mark: Buffer
  private readonly markText: string
  private previous: Buffer | null = null
  private parser: EventSourceParser | null = null
  private done = false

  constructor (mark: string, private readonly onEvent: (eventName: string | undefined, payload: Record<string, unknown>) => boolean) {
    this.mark = Buffer.from(mark)
    this.markText = mark
  }

  push (chunk: Buffer): void {
    if (this.done) return
    if (this.parser === null) {
      const at = chunk.indexOf(this.mark)
      if (at === -1 && (this.previous === null || markAcrossSeam(this.previous, chunk, this.mark) === -1)) {
        this.previous = chunk
        return
      }
      this.parser = createParser({ onEvent: (event) => { this.inspect(event.event, event.data) } })
      const start = at === -1 ? -1 : eventStart(chunk, at)
      if (start !== -1) {
        this.previous = null
        this.parser.feed(chunk.toString('utf8', start))
        return
      }
      if (this.previous !== null) this.parser.feed(this.previous.toString('utf8'))
      this.previous = null
    }
    this.parser.feed(chunk.toString('utf8'))
  }

  private inspect (eventName: string | undefined, data: string): void {
    // Events other than the one watched for are not parsed: once the mark shows up, the chunk
    // holding it usually holds the events before it too.
    if (this.done || (eventName !== this.markText && !data.includes(this.markText))) return
    let payload: unknown
    try {
      payload = JSON.parse(data)
    } catch {
      return
    }
    if (payload === null || typeof payload !== 'object') return
    if (this.onEvent(eventName, payload as Record<string, unknown>)) {
      this.done = true
      this.previous = null
    }
  }
}

/** Where the event holding offset `at` starts: just past the blank line before it; -1 when that is not in `chunk`. */
function eventStart (chunk: Buffer, at: number): number {
  const lf = chunk.lastIndexOf(EVENT_END_LF, at)
  const crlf = chunk.lastIndexOf(EVENT_END_CRLF, at)
  return Math.max(lf === -1 ? -1 : lf + 2, crlf === -1 ? -1 : crlf + 3)
}
