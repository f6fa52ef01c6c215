import type { Readable } from 'node:stream'

/**
 * The first events of a stream carry no content (`response.created`, `response.in_progress`); an
 * overload or a usage limit can still follow as `response.failed` before anything is said. While
 * the client has seen nothing, the answer may go to another account instead: so the headers and
 * those first events are held back — until the first event with content, the end of the stream,
 * `holdMs`, or `MAX_HOLD_BYTES`, whichever comes first. Events are told apart by a look at their type; only a
 * `response.failed` is parsed.
 */
const PRELUDE = new Set(['response.created', 'response.in_progress'])
const EVENT_LINE = /^event:[ \t]*(\S+)/m
const TYPE_FIELD = /"type"\s*:\s*"([^"]+)"/
const DATA_LINES = /^data:[ \t]?(.*)$/gm
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
  return new Promise((resolve, reject) => {
    const held: HeldStream = { chunks: [], failure: null, ended: false }
    let text = ''
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
      text += chunk.toString('utf8')
      if (held.failure !== null) {
        if (size > MAX_FAILURE_BYTES) closeAfterFailure()
        return
      }
      const verdict = inspect(text)
      if (verdict === 'wait') {
        if (size > MAX_HOLD_BYTES) return release()
        // Keep only the unfinished event: the finished ones were all prelude.
        text = text.slice(lastBoundary(text))
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

/** 'content' once an event other than the prelude completed; the failure's error; else 'wait'. */
function inspect (text: string): 'wait' | 'content' | Record<string, unknown> {
  const end = lastBoundary(text)
  if (end === 0) return 'wait'
  for (const block of text.slice(0, end).split(/\r?\n\r?\n/)) {
    if (block.trim() === '' || /^(:[^\n]*(\r?\n|$))+$/.test(block)) continue // comments only
    const type = EVENT_LINE.exec(block)?.[1] ?? TYPE_FIELD.exec(block)?.[1]
    if (type !== undefined && PRELUDE.has(type)) continue
    if (type === 'response.failed') return failureOf(block) ?? 'content'
    return 'content'
  }
  return 'wait'
}

/** The offset just past the last complete event in `text`. */
function lastBoundary (text: string): number {
  const lf = text.lastIndexOf('\n\n')
  const crlf = text.lastIndexOf('\r\n\r\n')
  return Math.max(lf === -1 ? 0 : lf + 2, crlf === -1 ? 0 : crlf + 4)
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
