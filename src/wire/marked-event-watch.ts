import { createParser, type EventSourceParser } from 'eventsource-parser'
import { bytesStartWith } from './byte-seam.js'
import { ChunkText } from './chunk-text.js'
import { EVENT_HEAD_BYTES as HEAD, EventEnds } from './event-bounds.js'
import { DATA_LINE_START, soleDataLineEnd } from './backend-events.js'

const CR = 0x0d

const LF = 0x0a
const SPACE = 0x20
const EVENT_FIELD = Buffer.from('event:')

/** The marks as bytes, made once per mark rather than once per watched answer. */
const markBytes = new Map<string, Buffer>()

/** An event a watch looks out for, and what it does with it. */
export interface WatchedEvent {
  /** The event's name (a `response.completed`, a `response.failed`). */
  readonly mark: string
  /**
   * Gets each event from the mark's first sight on that names the mark (its name and its data as
   * text: the watcher decides how much of it to read); answers true once it has what it wanted.
   */
  readonly onEvent: (eventName: string | undefined, data: string) => boolean
  /**
   * Optional, tried first for an event named by the mark whose data is one line, whole in one
   * chunk (the backend's way): that data as the chunk's bytes from `start` to `end`, so a watcher
   * that wants a few values from it need not have the whole event decoded. Answers as `onEvent`
   * does, or undefined to be given the event as text after all.
   */
  readonly onDataBytes?: (chunk: Buffer, start: number, end: number) => boolean | undefined
}

/** One watched event and how far its watch has got. */
class Mark {
  readonly bytes: Buffer
  done = false

  constructor (readonly text: string, readonly onEvent: WatchedEvent['onEvent'], readonly onDataBytes: WatchedEvent['onDataBytes']) {
    let bytes = markBytes.get(text)
    if (bytes === undefined) markBytes.set(text, bytes = Buffer.from(text))
    this.bytes = bytes
  }
}

/**
 * Watches a passing SSE stream for the events that its marks name (a `response.completed`, a
 * `response.failed`) without reading the others: each chunk's events are found by their blank
 * lines, and each is told apart by its first bytes — its name on its first line, as the backend
 * writes it, or else a mark within its first HEAD bytes. The rest of an event (often tens of
 * kilobytes) is never searched. A marked event is read whole when it lies in one chunk, or the
 * stream is parsed as SSE from its start on. However many marks, each chunk is walked once: the
 * pool watches every answer for both its failure and its usage.
 */
export class MarkedEventWatch {
  private readonly marks: Mark[]
  /** Marks whose watcher has not yet got what it wanted. */
  private waiting: number
  /** The stream's last two bytes so far (-1: none yet): a blank line may begin at a chunk's end. */
  private byteBefore = -1
  private lastByte = -1
  /** The start of the event the stream is in, while its first HEAD bytes are not all in. */
  private headTail: Buffer | null = null
  /** The stream is in an event whose first bytes named no mark. */
  private inEvent = false
  /** The mark that named the event `names` last found, on a line ending at `nameEnd` (null: found otherwise). */
  private namedBy: Mark | null = null
  private nameEnd = 0
  private parser: EventSourceParser | null = null
  /** Once the parser reads the stream: a character whose bytes two chunks share is decoded whole. */
  private chunkText: ChunkText | null = null

  constructor (watched: readonly WatchedEvent[]) {
    this.marks = watched.map(({ mark, onEvent, onDataBytes }) => new Mark(mark, onEvent, onDataBytes))
    this.waiting = this.marks.length
  }

  push (chunk: Buffer): void {
    if (this.waiting === 0) return
    if (this.parser === null) this.walk(chunk)
    else this.parser.feed(this.chunkText!.of(chunk))
  }

  /**
   * One chunk, event by event: a blank line is found by a search for a line feed, many times
   * cheaper than a search for the mark through a real `response.created` or `response.completed`
   * (the request's instructions and tools, tens of kilobytes).
   */
  private walk (chunk: Buffer): void {
    let start = 0
    const ends = new EventEnds(chunk)
    const tail = this.headTail
    if (tail !== null) {
      // The event the chunk before ended in had fewer than HEAD bytes there: the rest of its head is here.
      this.headTail = null
      const head = Buffer.concat([tail, chunk.subarray(0, HEAD - tail.length)])
      if (this.names(head, 0, head.length)) {
        this.parseFrom(tail, chunk)
        return
      }
      start = this.blankLineEnd(chunk, ends)
      if (start === -1 && head.length < HEAD) {
        // Still not all of the head (a stream in very small chunks): it is kept whole, as one piece.
        this.headTail = head
        this.keep(chunk)
        return
      }
    } else if (this.inEvent) {
      start = this.blankLineEnd(chunk, ends)
    }
    this.inEvent = false
    while (start !== -1 && start < chunk.length) {
      const end = ends.after(start)
      const headEnd = Math.min(start + HEAD, end === -1 ? chunk.length : end)
      if (this.names(chunk, start, headEnd)) {
        if (end === -1) {
          this.parseFrom(null, chunk.subarray(start))
          return
        }
        this.read(chunk, start, end)
        if (this.waiting === 0) return
      } else if (end === -1) {
        if (headEnd - start < HEAD) this.headTail = chunk.subarray(start)
        break
      }
      start = end
    }
    this.inEvent = start !== chunk.length
    this.keep(chunk)
  }

  /**
   * Whether the event starting at `start` (its first bytes up to `headEnd` in this chunk) is named
   * or typed by a mark still waited for. Named on its first line (the backend's way), its name
   * alone decides, compared in place; otherwise the marks are looked for in its first bytes.
   */
  private names (chunk: Buffer, start: number, headEnd: number): boolean {
    const named = headEnd - start > EVENT_FIELD.length && bytesStartWith(chunk, start, EVENT_FIELD)
    const name = start + EVENT_FIELD.length + (named && chunk[start + EVENT_FIELD.length] === SPACE ? 1 : 0)
    // The event's first bytes, cut once for whichever marks are looked for in them.
    let head: Buffer | null = null
    this.namedBy = null
    for (const mark of this.marks) {
      if (mark.done) continue
      if (!named || headEnd - name < mark.bytes.length + 1) {
        head ??= chunk.subarray(start, headEnd)
        if (head.indexOf(mark.bytes) !== -1) return true
        continue
      }
      const after = chunk[name + mark.bytes.length]
      if (bytesStartWith(chunk, name, mark.bytes) && (after === LF || after === CR)) {
        this.namedBy = mark
        this.nameEnd = name + mark.bytes.length
        return true
      }
    }
    return false
  }

  /** One whole event of the chunk, read without a parser: as bytes by a watcher that can, else as text. */
  private read (chunk: Buffer, start: number, end: number): void {
    const mark = this.namedBy
    if (mark?.onDataBytes !== undefined) {
      // The name's line, then one data line that ends the event.
      if (soleDataLineEnd(chunk, this.nameEnd) === end - 2) {
        const answer = mark.onDataBytes(chunk, this.nameEnd + DATA_LINE_START, end - 2)
        if (answer !== undefined) {
          if (answer) this.settle(mark)
          return
        }
      }
    }
    const { name, data } = readEvent(chunk.toString('utf8', start, end))
    this.inspect(name, data)
  }

  /** From here on the stream is parsed as SSE, starting with `first` (when some began before) and `chunk`. */
  private parseFrom (first: Buffer | null, chunk: Buffer): void {
    this.parser = createParser({ onEvent: (event) => { this.inspect(event.event, event.data) } })
    this.chunkText = new ChunkText()
    if (first !== null) this.parser.feed(this.chunkText.of(first))
    this.parser.feed(this.chunkText.of(chunk))
  }

  private keep (chunk: Buffer): void {
    this.byteBefore = chunk.length > 1 ? chunk[chunk.length - 2]! : this.lastByte
    this.lastByte = chunk[chunk.length - 1] ?? this.lastByte
  }

  /** Where in `chunk` the event the stream is in ends (its blank line begun before the chunk, or in it); -1 when not in `chunk`. */
  private blankLineEnd (chunk: Buffer, ends: EventEnds): number {
    if (this.lastByte === LF) {
      if (chunk[0] === LF) return 1
      if (chunk[0] === CR && chunk[1] === LF) return 2
    } else if (this.lastByte === CR && this.byteBefore === LF && chunk[0] === LF) {
      return 1
    }
    return ends.after(0)
  }

  /**
   * An event named by a mark goes to that mark's watcher alone; another (one without a name, or
   * with a name no mark has) to each watcher whose mark its data holds. Other events are not
   * looked at: once a mark shows up, the chunk holding it usually holds the events before it too.
   */
  private inspect (eventName: string | undefined, data: string): void {
    const named = eventName === undefined ? null : this.markNamed(eventName)
    if (named !== null) {
      this.offer(named, eventName, data)
      return
    }
    for (const mark of this.marks) {
      if (!mark.done && data.includes(mark.text)) this.offer(mark, eventName, data)
    }
  }

  private markNamed (eventName: string): Mark | null {
    for (const mark of this.marks) {
      if (mark.text === eventName) return mark
    }
    return null
  }

  private offer (mark: Mark, eventName: string | undefined, data: string): void {
    if (!mark.done && mark.onEvent(eventName, data)) this.settle(mark)
  }

  private settle (mark: Mark): void {
    mark.done = true
    this.waiting--
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
