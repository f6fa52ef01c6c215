import { createParser, type EventSourceParser } from 'eventsource-parser'
import { markAcrossSeam } from './byte-seam.js'

/**
 * Watches a passing SSE stream for one kind of event without parsing the rest: each chunk is
 * searched for `mark` (a byte search), and only from there on is the stream parsed as SSE. The
 * chunk before the mark is parsed too, since the event's lines may start there. `onEvent` gets
 * each event from then on, as JSON, and answers true once it has what it wanted.
 */
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
      if (!this.containsMark(chunk)) {
        this.previous = chunk
        return
      }
      this.parser = createParser({ onEvent: (event) => { this.inspect(event.event, event.data) } })
      if (this.previous !== null) this.parser.feed(this.previous.toString('utf8'))
      this.previous = null
    }
    this.parser.feed(chunk.toString('utf8'))
  }

  private containsMark (chunk: Buffer): boolean {
    return chunk.indexOf(this.mark) !== -1 || (this.previous !== null && markAcrossSeam(this.previous, chunk, this.mark) !== -1)
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
