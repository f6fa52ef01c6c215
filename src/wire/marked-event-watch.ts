import { createParser, type EventSourceParser } from 'eventsource-parser'
import { markAcrossSeam } from './byte-seam.js'
import { ChunkText } from './chunk-text.js'
import { eventEnd, eventStart } from './event-bounds.js'

/**
 * Watches a passing SSE stream for one kind of event without parsing the rest: each chunk is
 * searched for `mark` (a byte search), and only from there on is the stream parsed as SSE,
 * starting at the blank line before the mark: the events before it in that chunk are not looked
 * at. When the event holding the mark began in the chunk before, that chunk is parsed too.
 * `onEvent` gets each event from then on that names the mark (its name and its data as text: the
 * watcher decides how much of it to read) and answers true once it has what it wanted.
 */
const CR = 0x0d

/** The marks as bytes, made once per mark rather than once per watched answer. */
const markBytes = new Map<string, Buffer>()

export class MarkedEventWatch {
  private readonly mark: Buffer
  private readonly markText: string
  private previous: Buffer | null = null
  private parser: EventSourceParser | null = null
  /** Once the parser reads the stream: a character whose bytes two chunks share is decoded whole. */
  private chunkText: ChunkText | null = null
  private done = false

  constructor (mark: string, private readonly onEvent: (eventName: string | undefined, data: string) => boolean) {
    let bytes = markBytes.get(mark)
    if (bytes === undefined) markBytes.set(mark, bytes = Buffer.from(mark))
    this.mark = bytes
    this.markText = mark
  }

  push (chunk: Buffer): void {
    if (this.done) return
    if (this.parser === null) {
      let at = chunk.indexOf(this.mark)
      if (at === -1 && (this.previous === null || markAcrossSeam(this.previous, chunk, this.mark) === -1)) {
        this.previous = chunk
        return
      }
      let start = at === -1 ? -1 : eventStart(chunk, at)
      // The common case, read without a parser: the events holding the mark lie whole in this chunk.
      while (start !== -1) {
        const end = eventEnd(chunk, at)
        if (end === -1) break
        const { name, data } = readEvent(chunk.toString('utf8', start, end))
        this.inspect(name, data)
        if (this.done) return
        at = chunk.indexOf(this.mark, end)
        if (at === -1) {
          this.previous = chunk
          return
        }
        start = eventStart(chunk, at)
      }
      this.parser = createParser({ onEvent: (event) => { this.inspect(event.event, event.data) } })
      this.chunkText = new ChunkText()
      if (start !== -1) {
        this.previous = null
        this.parser.feed(this.chunkText.of(chunk.subarray(start)))
        return
      }
      if (this.previous !== null) this.parser.feed(this.chunkText.of(this.previous))
      this.previous = null
    }
    this.parser.feed(this.chunkText!.of(chunk))
  }

  private inspect (eventName: string | undefined, data: string): void {
    // Events other than the one watched for are not looked at: once the mark shows up, the chunk
    // holding it usually holds the events before it too.
    if (this.done || (eventName !== this.markText && !data.includes(this.markText))) return
    if (this.onEvent(eventName, data)) {
      this.done = true
      this.previous = null
    }
  }
}

/** An event's data as a JSON object; null when it is not one. */
export function eventObject (data: string): Record<string, unknown> | null {
  try {
    const payload: unknown = JSON.parse(data)
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? payload as Record<string, unknown> : null
  } catch {
    return null
  }
}

/** One whole event's name and data (its `data` lines joined by newlines), as an SSE parser reads them. */
function readEvent (text: string): { name: string | undefined, data: string } {
  let name: string | undefined
  let data: string | undefined
  for (let lineStart = 0; lineStart < text.length;) {
    let lineEnd = text.indexOf('\n', lineStart)
    if (lineEnd === -1) lineEnd = text.length
    const next = lineEnd + 1
    if (text.charCodeAt(lineEnd - 1) === CR) lineEnd--
    // Only `data` and `event` lines matter; a field without a colon has an empty value.
    const isData = text.startsWith('data', lineStart)
    if (isData || text.startsWith('event', lineStart)) {
      const nameEnd = lineStart + (isData ? 4 : 5)
      const colon = text.charCodeAt(nameEnd)
      if (nameEnd === lineEnd || colon === 0x3a) {
        const valueStart = nameEnd === lineEnd ? lineEnd : text.charCodeAt(nameEnd + 1) === 0x20 ? nameEnd + 2 : nameEnd + 1
        const value = text.slice(valueStart, lineEnd)
        if (!isData) name = value
        else data = data === undefined ? value : `${data}\n${value}`
      }
    }
    lineStart = next
  }
  return { name: name === '' ? undefined : name, data: data ?? '' }
}
