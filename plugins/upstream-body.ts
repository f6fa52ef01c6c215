import { subscribe } from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import type { BodyChunk, RequestBody } from '../src/wire/request-body.js'

/**
 * The body as undici gets it. A body of one buffer goes as that Buffer while the bodies so held
 * stay within BUFFER_BODIES_UP_TO: undici writes a Buffer within its call, where an iterable's
 * first chunk waits for a turn of its async loop (about 7 µs more from the request to its
 * upstream write, on the path of every answer), but undici keeps a Buffer body referenced until
 * the answer's last byte, so many long streams would each hold their request. Past the bound, and
 * for a body of several chunks, an iterable of its chunks, each let go once undici has taken it
 * for writing (see SentChunks); an iterable rather than a Readable, which would cost a stream and
 * its events. `letGo` must be called with what this returned once its answer is over.
 */
export function undiciBody (body: RequestBody): Buffer | Iterable<BodyChunk> {
  const chunks = body.chunks
  if (chunks.length === 1) {
    const only = chunks[0]!
    if (typeof only !== 'string' && heldAsBuffers + only.length <= BUFFER_BODIES_UP_TO) {
      heldAsBuffers += only.length
      return only
    }
  }
  return new SentChunks(chunks)
}

/** Ends what undiciBody counted for a body it handed over, once undici is done with it. */
export function letGo (sent: Buffer | Iterable<BodyChunk>): void {
  if (sent instanceof Buffer) heldAsBuffers -= sent.length
}

/** The request bodies held by undici as Buffers at most: a few hundred Codex turns' worth, a fixed cost even with thousands of streams open. */
export const BUFFER_BODIES_UP_TO = 16 * 1024 * 1024
let heldAsBuffers = 0

/** The bytes of request bodies handed to undici as Buffers whose answers are not over yet. */
export function bufferBodiesHeld (): number {
  return heldAsBuffers
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
  if (following) return
  following = true
  subscribe('undici:client:sendHeaders', (message) => {
    const { request, headers, socket } = message as { request: { body?: unknown }, headers: string, socket: Socket }
    if (request.body instanceof SentChunks) request.body.corkOn(socket, headers)
  })
}

let following = false
