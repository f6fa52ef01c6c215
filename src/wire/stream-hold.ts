import type { Readable } from 'node:stream'
import { EVENT_HEAD_BYTES, EventEnds } from './event-bounds.js'

/**
 * The first events of a stream carry no content (`response.created`, `response.in_progress`); an
 * overload or a usage limit can still follow as `response.failed` before anything is said. While
 * the client has seen nothing, the answer may go to another account instead: so the headers and
 * those first events are held back — until the first event with content, the end of the stream,
 * `holdMs`, or `MAX_HOLD_BYTES`, whichever comes first. Events are read one at a time from the
 * bytes, and told apart by a look at their type: what follows the first event with content (most
 * of a short answer, which often arrives in the same chunk) is never decoded. Only a
 * `response.failed` is parsed.
 */
const PRELUDE = new Set(['response.created', 'response.in_progress'])
/** An event's name or JSON type; the name only when its line is whole (followed by its line end). */
const EVENT_LINE = /^event:[ \t]*(\S+)\s/m
const TYPE_FIELD = /"type"\s*:\s*"([^"]+)"/
const DATA_LINES = /^data:[ \t]?(.*)$/gm
const COMMENTS_ONLY = /^(:[^\n]*(\r?\n|$))+$/
/** A failure's event is read whole up to this size; the rest of that stream is not wanted. */
const MAX_FAILURE_BYTES = 64 * 1024
/** More than this without content (comments, say) is not a prelude any more: released, so backpressure holds. */
const MAX_HOLD_BYTES = 256 * 1024

export interface HeldStream {
  /** What was read so far, in order: to be written before the rest of the stream. */
  chunks: Buffer[]
  /** The error of a `response.failed` that came before any content. */
  failure: Record<string, unknown> | null
  /** The stream ended (or, after a failure, was closed) while held. */
  ended: boolean
}

export function holdPrelude (body: Readable, holdMs: number): Promise<HeldStream> {
  const whole = heldWhole(body)
  if (whole !== null) return Promise.resolve(whole)
  return new Promise((resolve, reject) => {
    const held: HeldStream = { chunks: [], failure: null, ended: false }
    const events = new PreludeEvents()
    let size = 0
    let content = false
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      clearTimeout(timer)
      body.off('data', onData).off('end', onEnd).off('error', onError)
      if (!held.ended) body.pause()
      resolve(held)
    }
    const onData = (chunk: Buffer): void => {
      held.chunks.push(chunk)
      size += chunk.length
      if (content) return // released in a moment: gathered, not looked at
      if (held.failure !== null) {
        if (size > MAX_FAILURE_BYTES) closeAfterFailure()
        return
      }
      const verdict = events.read(chunk)
      if (verdict === 'wait') {
        if (size > MAX_HOLD_BYTES) release()
        return
      }
      if (verdict === 'content') {
        // Released once what has already arrived is read: an answer whose end came in the same
        // read (a short one) then goes out whole, in one write, rather than as a stream.
        content = true
        queueMicrotask(release)
        return
      }
      held.failure = verdict
    }
    /** The stream failed: nothing of it will be delivered unless the failure is the request's own. */
    const closeAfterFailure = (): void => {
      held.ended = true
      body.destroy()
      release()
    }
    const onEnd = (): void => {
      held.ended = true
      release()
    }
    const onError = (err: Error): void => {
      clearTimeout(timer)
      body.off('data', onData).off('end', onEnd).off('error', onError)
      if (held.failure !== null) {
        held.ended = true
        resolve(held)
      } else {
        reject(err)
      }
    }
    const timer = setTimeout(() => {
      if (held.failure !== null) closeAfterFailure()
      else release()
    }, holdMs)
    body.on('data', onData).on('end', onEnd).on('error', onError)
  })
}

/**
 * A short answer often arrives whole with its headers, in one read: by the time the hold starts,
 * the stream has all its bytes (its end pushed, not yet emitted). Those are taken and judged
 * at once, without listeners, a timer or the ticks the stream would take to hand them over.
 * `_readableState.ended` is where a Node stream knows that before it says so (Node's own
 * stream helpers and undici's body mixins read it too); null when the stream is still open.
 * `holdPrelude` starts with it; a caller on the path of every answer asks it first, so that a
 * whole answer is not a turn of the microtask queue later, as a resolved promise would be.
 */
export function heldWhole (body: Readable): HeldStream | null {
  const state = (body as { _readableState?: { ended?: boolean } })._readableState
  if (state?.ended !== true || body.destroyed) return null
  const chunks: Buffer[] = []
  for (let chunk: Buffer | null = body.read(); chunk !== null; chunk = body.read()) chunks.push(chunk)
  return judgedWhole(chunks)
}

/** A whole answer's bytes, judged as a held stream's are: delivered unless a `response.failed` came before any content. */
export function judgedWhole (chunks: Buffer[]): HeldStream {
  const held: HeldStream = { chunks, failure: null, ended: true }
  // One search for the name tells most answers apart without reading their events.
  if (chunks.length === 1 && !chunks[0]!.includes(FAILED)) return held
  const events = new PreludeEvents()
  let verdict: ReturnType<PreludeEvents['read']> = 'wait'
  for (const chunk of chunks) {
    verdict = events.read(chunk)
    if (verdict !== 'wait') break
  }
  if (verdict !== 'wait' && verdict !== 'content') held.failure = verdict
  return held
}

const FAILED = Buffer.from('response.failed')

/**
 * The events of a held stream, read as they complete: 'content' once one other than the prelude
 * did, the failure's error for a `response.failed`, else 'wait' (all complete ones were prelude).
 */
class PreludeEvents {
  /** The bytes of an event not complete yet (they are in the held chunks too). */
  private unfinished: Buffer | null = null

  read (chunk: Buffer): 'wait' | 'content' | Record<string, unknown> {
    const bytes = this.unfinished === null ? chunk : Buffer.concat([this.unfinished, chunk])
    let start = 0
    const ends = new EventEnds(bytes)
    for (let end = ends.after(0); end !== -1; end = ends.after(start)) {
      const verdict = eventVerdict(bytes, start, end)
      if (verdict !== 'prelude') return verdict
      start = end
    }
    this.unfinished = start === bytes.length ? null : bytes.subarray(start)
    return 'wait'
  }
}

/**
 * What one whole event (`start` to `end`, blank line included) says of the stream. Only its first
 * bytes are decoded to tell it apart: a `response.created` carries the request's instructions and
 * tools, tens of kilobytes. The whole event is read for a failure, or when its start says nothing.
 */
function eventVerdict (bytes: Buffer, start: number, end: number): 'prelude' | 'content' | Record<string, unknown> {
  const cut = Math.min(end, start + EVENT_HEAD_BYTES)
  let text = bytes.toString('utf8', start, cut)
  let type = typeOf(text)
  if (type === undefined && cut < end) {
    text = bytes.toString('utf8', start, end)
    type = typeOf(text)
  }
  if (type === undefined) return text.trim() === '' || COMMENTS_ONLY.test(text.trimEnd()) ? 'prelude' : 'content' // comments only
  if (PRELUDE.has(type)) return 'prelude'
  if (type === 'response.failed') return failureOf(bytes.toString('utf8', start, end)) ?? 'content'
  return 'content'
}

function typeOf (text: string): string | undefined {
  return EVENT_LINE.exec(text)?.[1] ?? TYPE_FIELD.exec(text)?.[1]
}

function failureOf (block: string): Record<string, unknown> | null {
  const data = [...block.matchAll(DATA_LINES)].map((line) => line[1]).join('\n')
  try {
    const error = (JSON.parse(data) as { response?: { error?: unknown } }).response?.error
    return error !== null && typeof error === 'object' ? error as Record<string, unknown> : null
  } catch {
    return null
  }
}
