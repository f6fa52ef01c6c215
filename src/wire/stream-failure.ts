import { createParser, type EventSourceParser } from 'eventsource-parser'
import { markAcrossSeam } from './byte-seam.js'

const MARK = Buffer.from('response.failed')

/**
 * Watches a passing SSE stream for a `response.failed` event without parsing the rest: each chunk
 * is searched for the marker (a byte search), and only from there on is the stream parsed as SSE.
 * The chunk before the marker is parsed too, since the event's lines may start there.
 */
export class StreamFailureWatch {
  private previous: Buffer | null = null
  private parser: EventSourceParser | null = null
  private reported = false

  constructor (private readonly onFailure: (error: Record<string, unknown>) => void) {}

  push (chunk: Buffer): void {
    if (this.reported) return
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
    return chunk.indexOf(MARK) !== -1 || (this.previous !== null && markAcrossSeam(this.previous, chunk, MARK) !== -1)
  }

  private inspect (eventName: string | undefined, data: string): void {
    let payload: { type?: unknown, response?: { error?: unknown } }
    try {
      payload = JSON.parse(data) as typeof payload
    } catch {
      return
    }
    if (eventName !== 'response.failed' && payload.type !== 'response.failed') return
    const error = payload.response?.error
    if (error === null || typeof error !== 'object') return
    this.reported = true
    this.onFailure(error as Record<string, unknown>)
  }
}
