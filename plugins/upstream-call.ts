import { subscribe } from 'node:diagnostics_channel'
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { needsInspection, type UpstreamAnswer } from '../src/pool/failover-policy.js'
import type { BodyChunk, RequestBody } from '../src/wire/request-body.js'
import { holdPrelude } from '../src/wire/stream-hold.js'

/** Error bodies are read to classify them; more than this is not an error message. */
const MAX_ERROR_BODY = 64 * 1024

/**
 * The client left: what undici (which takes any emitter of 'abort') and the pool's ladder watch.
 * Lighter than an AbortController, whose EventTarget costs microseconds on every request.
 */
export class ClientGone extends EventEmitter {
  aborted = false

  abort (): void {
    if (this.aborted) return
    this.aborted = true
    this.emit('abort')
  }
}

/** One upstream answer: streamed on, or (error statuses) read, whole or a first part, so it can be judged. */
export interface UpstreamReply extends UpstreamAnswer {
  headers: Record<string, string | string[] | undefined>
  stream: Readable | null
  buffered: Buffer | null
}

export interface Attempt {
  /** Set when `upstream` serves several origins (an account's egress proxy); the shared pool knows its own. */
  origin?: string
  path: string
  method: Dispatcher.HttpMethod
  /** undici's flat [name, value, …] list. */
  headers: string[]
  body: RequestBody | undefined
  signal: ClientGone
  /** How long a stream's content-free first events may be held back (0: not at all). */
  holdMs: number
  /** Read a 400's body too (it may be `invalid_encrypted_content`, which the caller handles). */
  inspect400: boolean
}

/**
 * Sends one attempt upstream. Failure statuses come back read (up to 64 KiB); a 200 event stream
 * comes back with its content-free first events held (see stream-hold.ts); anything else as a
 * stream, untouched. `onHeaders` gets the seconds until the answer's headers.
 */
export async function callUpstream (upstream: Dispatcher, o: Attempt, onHeaders: (seconds: number) => void): Promise<UpstreamReply> {
  const sentAt = performance.now()
  const sent = o.body !== undefined && o.body.length > 0 ? o.body : null
  // One object literal: spreading a shared one into another costs microseconds per request in V8 11.
  const response = await upstream.request({
    origin: o.origin,
    path: o.path,
    method: o.method,
    headers: sent === null ? o.headers : o.headers.concat('content-length', String(sent.length)),
    // undici writes any iterable body (writeIterable in lib/dispatcher/client-h1.js); its types name only a few kinds.
    body: sent === null ? null : releasedOnceSent(sent) as unknown as Readable,
    signal: o.signal
  })
  onHeaders((performance.now() - sentAt) / 1000)
  const { statusCode: status, headers, body } = response
  const blames = needsInspection(status)
  if (!blames && !(status === 400 && o.inspect400)) {
    if (status !== 200 || o.holdMs === 0 || !isEventStream(headers)) return { status, headers, stream: body, buffered: null, errorBody: null }
    const held = await holdPrelude(body, o.holdMs)
    const buffered = held.chunks.length === 0 ? null : held.chunks.length === 1 ? held.chunks[0]! : Buffer.concat(held.chunks)
    return { status, headers, stream: held.ended ? null : body, buffered, errorBody: null, streamError: held.failure }
  }
  const { prefix, complete } = await readPrefix(body, MAX_ERROR_BODY)
  // An answer that may blame the account is never delivered: drop the rest. A 400 may still be the
  // client's answer: whatever was not read yet follows the prefix.
  if (!complete && blames) body.destroy()
  return { status, headers, stream: complete || blames ? null : body, buffered: prefix, errorBody: prefix.toString('utf8') }
}

function isEventStream (headers: Record<string, string | string[] | undefined>): boolean {
  const type = headers['content-type']
  return typeof type === 'string' && type.includes('text/event-stream')
}

/**
 * The body as undici gets it: its chunks, each let go once undici has taken it for writing. A
 * Buffer body stays referenced by undici until the answer's last byte, and an answer can stream
 * for many minutes while Codex bodies grow to megabytes. An iterable rather than a Readable:
 * undici writes it with one loop, where a stream costs a Readable and its events per request. The
 * length goes in the headers: no chunked upload.
 */
export function releasedOnceSent (body: RequestBody): Iterable<BodyChunk> {
  return new SentChunks(body.chunks)
}

/** The bytes undici writes before the body besides the headers it names: its content-length line. */
const HEAD_MARGIN = 64

/**
 * undici writes an iterable body chunk by chunk, each with a write (a syscall) of its own. A body
 * of several chunks (a translated request is its structure between the client's long strings,
 * which are not copied; a pass-through body the chunks it arrived in) is written with one where
 * it fits the socket's buffer: undici names the socket just before the request's first byte
 * (`undici:client:sendHeaders`, documented), the body corks it then and uncorks it after its last
 * chunk, or before a chunk that would fill the buffer (undici would then wait for a 'drain' that a
 * corked socket never emits).
 */
class SentChunks implements Iterable<BodyChunk> {
  private readonly pending: Array<BodyChunk | undefined>
  private next = 0
  private corked: Socket | null = null
  /** What undici writes with the first chunk: the request's head. */
  private head = 0
  private readonly iterator: Iterator<BodyChunk> = {
    next: () => {
      if (this.next === this.pending.length) {
        this.uncork()
        return DONE
      }
      const chunk = this.pending[this.next]!
      this.pending[this.next++] = undefined
      const socket = this.corked
      if (socket !== null && socket.writableLength + this.head + chunk.length >= socket.writableHighWaterMark) this.uncork()
      this.head = 0
      return { done: false, value: chunk }
    }
  }

  constructor (chunks: readonly BodyChunk[]) {
    this.pending = chunks.slice()
  }

  /** Holds the socket's writes until the last chunk (or a full buffer): a body of several chunks only. */
  corkOn (socket: Socket, headers: string): void {
    if (this.pending.length < 2 || this.next > 0) return
    socket.cork()
    this.corked = socket
    this.head = headers.length + HEAD_MARGIN
  }

  private uncork (): void {
    if (this.corked === null) return
    this.corked.uncork()
    this.corked = null
  }

  [Symbol.iterator] (): Iterator<BodyChunk> {
    return this.iterator
  }
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }

/** Lets bodies of several chunks cork the socket undici writes them to (see SentChunks); once per process. */
export function writeSeveralChunksAtOnce (): void {
  if (corking) return
  corking = true
  subscribe('undici:client:sendHeaders', (message) => {
    const { request, headers, socket } = message as { request: { body?: unknown }, headers: string, socket: Socket }
    if (request.body instanceof SentChunks) request.body.corkOn(socket, headers)
  })
}

let corking = false

/** Reads up to about `limit` bytes, leaving the rest unread (paused) in the stream. */
function readPrefix (body: Readable, limit: number): Promise<{ prefix: Buffer, complete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (complete: boolean): void => {
      body.off('data', onData).off('end', onEnd).off('error', onError)
      resolve({ prefix: Buffer.concat(chunks), complete })
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      size += chunk.length
      if (size >= limit) {
        body.pause()
        done(false)
      }
    }
    const onEnd = (): void => { done(true) }
    const onError = (err: Error): void => {
      body.off('data', onData).off('end', onEnd).off('error', onError)
      reject(err)
    }
    body.on('data', onData).on('end', onEnd).on('error', onError)
  })
}
