import { EventEmitter } from 'node:events'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { needsInspection, type UpstreamAnswer } from '../src/pool/failover-policy.js'
import type { RequestBody } from '../src/wire/request-body.js'
import { holdPrelude, judgedWhole } from '../src/wire/stream-hold.js'
import { letGo, undiciBody } from './upstream-body.js'
import { sendUpstream } from './upstream-answer.js'

/** Error bodies are read to classify them; more than this is not an error message. */
const MAX_ERROR_BODY = 64 * 1024

/**
 * The client left: what an upstream call (`UpstreamAnswer`), a translated answer's reading and the
 * pool's ladder watch.
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
  /**
   * Tells whether the body carries encrypted blobs; then a 400's body is read too (it may be
   * `invalid_encrypted_content`, which the caller handles). Asked only of a 400: finding out is a
   * search of the whole body.
   */
  blobs: { readonly carriesBlobs: boolean } | null
}

/**
 * Sends one attempt upstream. Failure statuses come back read (up to 64 KiB); a 200 event stream
 * comes back with its content-free first events held (see stream-hold.ts); anything else as a
 * stream, untouched. An answer that came whole with its headers comes back as its bytes, without
 * a stream (see upstream-answer.ts). `onHeaders` gets the seconds until the answer's headers.
 */
export async function callUpstream (upstream: Dispatcher, o: Attempt, onHeaders: (seconds: number) => void): Promise<UpstreamReply> {
  const sentAt = performance.now()
  const sent = o.body !== undefined && o.body.length > 0 ? undiciBody(o.body) : null
  // undici holds the body until the answer's last byte (or its failure): let go of it then.
  const release = sent === null ? noop : () => { letGo(sent) }
  // One object literal: spreading a shared one into another costs microseconds per request in V8 11.
  const answer = await sendUpstream(upstream, {
    origin: o.origin,
    path: o.path,
    method: o.method,
    headers: sent === null ? o.headers : o.headers.concat('content-length', String(o.body!.length)),
    // undici writes a Buffer or any iterable body (writeIterable in lib/dispatcher/client-h1.js); its types name only a few kinds.
    body: sent as Readable | null
  }, o.signal, release)
  onHeaders((performance.now() - sentAt) / 1000)
  const { status, headers } = answer
  // Taken now, in the turn the headers came in: the bytes that came with them are all there.
  const whole = answer.whole()
  const blames = needsInspection(status)
  if (!blames && !(status === 400 && o.blobs?.carriesBlobs === true)) {
    const holds = status === 200 && o.holdMs !== 0 && isEventStream(headers)
    if (whole !== null) {
      const held = holds ? judgedWhole(whole) : null
      return { status, headers, stream: null, buffered: joined(whole), errorBody: null, streamError: held?.failure }
    }
    if (!holds) return { status, headers, stream: answer.stream(), buffered: null, errorBody: null }
    const body = answer.stream()
    const held = await holdPrelude(body, o.holdMs)
    return { status, headers, stream: held.ended ? null : body, buffered: joined(held.chunks), errorBody: null, streamError: held.failure }
  }
  if (whole !== null) {
    const prefix = joined(whole) ?? EMPTY
    return { status, headers, stream: null, buffered: prefix, errorBody: prefix.toString('utf8') }
  }
  const body = answer.stream()
  const { prefix, complete } = await readPrefix(body, MAX_ERROR_BODY)
  // An answer that may blame the account is never delivered: drop the rest. A 400 may still be the
  // client's answer: whatever was not read yet follows the prefix.
  if (!complete && blames) body.destroy()
  return { status, headers, stream: complete || blames ? null : body, buffered: prefix, errorBody: prefix.toString('utf8') }
}

/** The chunks as one buffer; null for none. */
function joined (chunks: Buffer[]): Buffer | null {
  return chunks.length === 0 ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}

const EMPTY = Buffer.alloc(0)

function noop (): void {}

function isEventStream (headers: Record<string, string | string[] | undefined>): boolean {
  const type = headers['content-type']
  return typeof type === 'string' && type.includes('text/event-stream')
}

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
