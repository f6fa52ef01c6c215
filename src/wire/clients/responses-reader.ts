import { createParser, type EventSourceParser } from 'eventsource-parser'
import type { AnswerSink, AnswerStart, AnswerUsage, ToolCall } from './answer.js'
import { completedUsage, completedUsageInBytes, readUsage, type CompletedUsage } from '../usage-watch.js'
import { endsBetweenEvents, readBackendEvents, type BackendEventReader } from '../backend-events.js'
import { flatString, flatValueAt, integerAt, ownString } from '../json-text.js'
import { ChunkText } from '../chunk-text.js'

interface ResponsesEvent {
  type?: string
  delta?: string
  output_index?: number
  item?: { type?: string, id?: string, call_id?: string, name?: string, arguments?: string }
  response?: {
    id?: string
    created_at?: number
    incomplete_details?: { reason?: string } | null
    error?: { code?: string, message?: string } | null
  }
  code?: string
  message?: string
}

/** The answer's start: its id and time are cut out of the event (see `answerStart`). */
const CREATED_PREFIX = '{"type":"response.created"'
const RESPONSE_KEY = '"response":'
const ID_KEY = '"id":"'
const CREATED_AT_KEY = '"created_at":'
/**
 * Text deltas, most of an answer's events: their text is cut out of the event (see `flatString`).
 * The backend writes their type first, the delta among the top-level fields before any object or list.
 */
const TEXT_DELTA_PREFIX = '{"type":"response.output_text.delta"'
const REASONING_DELTA_PREFIX = '{"type":"response.reasoning_summary_text.delta"'
const DELTA_KEY = '"delta":"'

/**
 * Chunks this long or longer are read in place (see `ResponsesReader.push`). Measured with a turn
 * whose start and end echo ASCII instructions (the parser's best case: its text decodes fastest),
 * reading in place costs 0.8 µs more for a 2 KB chunk and wins from about 18 KB: 5.8 against 8.2 µs at 60 KB.
 */
const READ_IN_PLACE_FROM = 16 * 1024
/** How much of a big `response.created` is decoded to find the answer's id and time. */
const CREATED_HEAD_BYTES = 512
const FUNCTION_CALL = 'function_call'
const FUNCTION_CALL_BYTES = Buffer.from(FUNCTION_CALL)

/** What the reader does with an event, by its `event:` name. */
const SKIP = 0
const CREATED = 1
const TEXT_DELTA = 2
const REASONING_DELTA = 3
/** Output items matter only when they are function calls. */
const ITEM = 4
const COMPLETED = 5
/** Parsed whole: rare events, and events without a name. */
const PARSED = 6

/**
 * The events a client hears of; the others' data is not even parsed. One switch rather than a
 * Set: each name comes as a fresh string, and hashing it for a lookup costs more than comparing.
 */
function eventKind (name: string | undefined): number {
  switch (name) {
    case 'response.output_text.delta': return TEXT_DELTA
    case 'response.reasoning_summary_text.delta': return REASONING_DELTA
    case 'response.output_item.added':
    case 'response.output_item.done': return ITEM
    case 'response.created': return CREATED
    case 'response.completed': return COMPLETED
    case undefined:
    case 'response.function_call_arguments.delta':
    case 'response.incomplete':
    case 'response.failed':
    case 'error': return PARSED
    default: return SKIP
  }
}

/**
 * What the pool learns from an answer a reader reads: its usage (with the model that answered, as
 * the pool counts it) and a `response.failed` event's error (an account's fault may be in it).
 */
export interface AnswerNews {
  usage: (usage: CompletedUsage) => void
  failure: (error: Record<string, unknown>) => void
}

/**
 * Reads the backend's Responses event stream and tells a sink what it says. Knows the events that
 * carry something for a client (text, reasoning summaries, function calls, the end); the rest
 * (encrypted reasoning items, metadata) stays with the pool. The pool hears of the usage and of a
 * failure from here too (`news`): the answer's events are read once.
 */
export class ResponsesReader {
  private readonly parser: EventSourceParser
  private readonly calls = new Map<number, ToolCall>()
  private readonly chunkText = new ChunkText()
  private ended = false
  /** The stream so far ends with a whole event (see `push`). */
  private betweenEvents = true
  private readonly readInPlace: BackendEventReader = (chunk, nameStart, nameEnd, dataStart, dataEnd) => this.onEventBytes(chunk, nameStart, nameEnd, dataStart, dataEnd)

  constructor (private readonly sink: AnswerSink, private readonly news?: AnswerNews) {
    this.parser = createParser({ onEvent: (event) => { this.onEvent(event.event, event.data) } })
  }

  /** True once the answer finished or failed: nothing after that reaches the sink. */
  get done (): boolean {
    return this.ended
  }

  /**
   * A big chunk is read event by event in place, as long as it stands between two events and its
   * events are in the backend's shape: the events a client does not hear of are never decoded,
   * nor the bulk of those whose few values are cut out (`response.created` and `.completed` echo
   * the instructions and tools, and the end every output item: tens of kilobytes each). From an
   * event of any other shape, or one cut by the chunk's end, the SSE parser reads the stream.
   * Smaller chunks are decoded whole and parsed: finding each event's lines in place costs more there.
   */
  push (chunk: Buffer | string): void {
    if (this.ended) return
    if (typeof chunk === 'string') {
      this.parser.feed(chunk)
      this.betweenEvents = chunk.endsWith('\n\n')
      return
    }
    const parsedFrom = this.betweenEvents && chunk.length >= READ_IN_PLACE_FROM ? readBackendEvents(chunk, this.readInPlace) : 0
    if (parsedFrom < chunk.length && !this.ended) this.parser.feed(this.chunkText.of(parsedFrom === 0 ? chunk : chunk.subarray(parsedFrom)))
    this.betweenEvents = endsBetweenEvents(chunk)
  }

  /** The upstream stream is over; without a final event the answer was cut. */
  end (): void {
    if (this.ended) return
    this.parser.reset({ consume: true })
    if (!this.ended) this.fail('stream_cut', 'the upstream stream ended before the answer was complete')
  }

  /** The upstream stream broke (a socket error, a timeout). */
  broke (reason: string): void {
    if (!this.ended) this.fail('stream_broken', `the upstream stream broke: ${reason}`)
  }

  private fail (code: string, message: string): void {
    this.ended = true
    this.sink.fail({ code, message })
  }

  private onEvent (name: string | undefined, data: string): void {
    if (!this.ended) this.read(eventKind(name), data)
  }

  /** An event read in place: decoded only as far as a client hears of it. */
  private onEventBytes (chunk: Buffer, nameStart: number, nameEnd: number, dataStart: number, dataEnd: number): boolean {
    const kind = eventKind(chunk.toString('latin1', nameStart, nameEnd))
    if (kind === SKIP || (kind === ITEM && chunk.subarray(dataStart, dataEnd).indexOf(FUNCTION_CALL_BYTES) === -1)) return true
    if (kind === COMPLETED) {
      const usage = completedUsageInBytes(chunk, dataStart, dataEnd)
      if (usage !== undefined) {
        this.completed(usage)
        return false
      }
    }
    if (kind === CREATED && dataEnd - dataStart > CREATED_HEAD_BYTES) {
      // The id and time come first: the head is enough, unless they are not there.
      const head = chunk.toString('utf8', dataStart, dataStart + CREATED_HEAD_BYTES)
      const start = head.startsWith(CREATED_PREFIX) ? answerStart(head) : null
      if (start !== null) {
        this.sink.start(start)
        return true
      }
    }
    this.read(kind, chunk.toString('utf8', dataStart, dataEnd))
    return !this.ended
  }

  private read (kind: number, data: string): void {
    if (kind === SKIP || (kind === ITEM && !data.includes(FUNCTION_CALL))) return
    if (kind === CREATED && data.startsWith(CREATED_PREFIX)) {
      const start = answerStart(data)
      if (start !== null) {
        this.sink.start(start)
        return
      }
    }
    if (kind === TEXT_DELTA || kind === REASONING_DELTA) {
      const delta = data.startsWith(kind === TEXT_DELTA ? TEXT_DELTA_PREFIX : REASONING_DELTA_PREFIX) ? flatString(data, DELTA_KEY) : undefined
      if (delta !== undefined) {
        if (delta === '') return
        if (kind === TEXT_DELTA) this.sink.text(delta)
        else this.sink.reasoning(delta)
        return
      }
    }
    // The end carries the whole response, every output item included: only its usage is read
    // (an end without usage, or not JSON, is parsed below like any other event).
    if (kind === COMPLETED) {
      const usage = completedUsage('response.completed', data)
      if (usage !== null) {
        this.completed(usage)
        return
      }
    }
    let event: ResponsesEvent
    try {
      event = JSON.parse(data) as ResponsesEvent
    } catch {
      return
    }
    const sink = this.sink
    switch (event.type) {
      case 'response.created':
        sink.start({ id: event.response?.id ?? '', created: event.response?.created_at ?? Math.floor(Date.now() / 1000) })
        return
      case 'response.output_text.delta':
        if (typeof event.delta === 'string' && event.delta !== '') sink.text(event.delta)
        return
      case 'response.reasoning_summary_text.delta':
        if (typeof event.delta === 'string' && event.delta !== '') sink.reasoning(event.delta)
        return
      case 'response.output_item.added':
        if (event.item?.type === 'function_call') this.callStarted(event.output_index ?? -1, event.item)
        return
      case 'response.function_call_arguments.delta': {
        const call = this.calls.get(event.output_index ?? -1)
        if (call === undefined || typeof event.delta !== 'string' || event.delta === '') return
        call.arguments += event.delta
        sink.toolCallArguments(call, event.delta)
        return
      }
      case 'response.output_item.done':
        if (event.item?.type === 'function_call') this.callDone(event.output_index ?? -1, event.item)
        return
      case 'response.completed':
        this.completed(readUsage(event.response))
        return
      case 'response.incomplete':
        this.ended = true
        sink.finish(event.response?.incomplete_details?.reason === 'content_filter' ? 'content_filter' : 'length', answerUsage(readUsage(event.response)))
        return
      case 'response.failed': {
        const error = event.response?.error
        if (error !== null && typeof error === 'object') this.news?.failure(error as Record<string, unknown>)
        this.fail(error?.code ?? 'response_failed', error?.message ?? 'the backend could not complete the answer')
        return
      }
      case 'error':
        this.fail(event.code ?? 'upstream_error', event.message ?? 'the backend reported an error')
    }
  }

  private completed (usage: CompletedUsage | null): void {
    this.ended = true
    if (usage !== null) this.news?.usage(usage)
    this.sink.finish(this.calls.size > 0 ? 'tool_calls' : 'stop', answerUsage(usage))
  }

  private callStarted (outputIndex: number, item: NonNullable<ResponsesEvent['item']>): ToolCall {
    const call: ToolCall = { index: this.calls.size, id: item.call_id ?? item.id ?? `call_${this.calls.size}`, name: item.name ?? '', arguments: '' }
    this.calls.set(outputIndex, call)
    this.sink.toolCallStart(call)
    return call
  }

  /** The finished call carries the whole arguments: whatever no delta carried is sent now. */
  private callDone (outputIndex: number, item: NonNullable<ResponsesEvent['item']>): void {
    const call = this.calls.get(outputIndex) ?? this.callStarted(outputIndex, item)
    const full = item.arguments ?? call.arguments
    if (full.length > call.arguments.length && full.startsWith(call.arguments)) {
      const rest = full.slice(call.arguments.length)
      call.arguments = full
      this.sink.toolCallArguments(call, rest)
    }
    this.sink.toolCallEnd(call)
  }
}

/**
 * The answer's id and time, cut out of `response.created`: the event carries the whole response as
 * it begins, the request's instructions and tools included, and these two come first in it. Null
 * when they are not written that way (the event is then parsed).
 */
function answerStart (data: string): AnswerStart | null {
  const response = flatValueAt(data, RESPONSE_KEY)
  if (response === -1 || data[response] !== '{') return null
  const id = flatString(data, ID_KEY, response)
  const createdAt = flatValueAt(data, CREATED_AT_KEY, response)
  const created = createdAt === -1 ? undefined : integerAt(data, createdAt)
  // The id is kept while the answer streams (it names every chunk): not as a view into the event.
  return id === undefined || created === undefined ? null : { id: ownString(id), created }
}

/** The usage a client is told: the pool's counts, with their total (input + output, as the backend counts it). */
function answerUsage (usage: CompletedUsage | null): AnswerUsage | null {
  return usage === null ? null : { input: usage.input, cachedInput: usage.cachedInput, output: usage.output, reasoning: usage.reasoning, total: usage.input + usage.output }
}
