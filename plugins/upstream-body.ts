import { subscribe } from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import type { BodyChunk, RequestBody } from '../src/wire/request-body.js'

/**
 * The body as undici gets it. A body of one buffer that owns all of its memory goes as that
 * Buffer: undici writes it within its call, where an iterable waits for turns of its async loop
 * (a few µs before the request's first byte). But undici keeps a Buffer body referenced until the
 * answer's last byte (the abort closure its HTTP/1 writer makes holds it), and an answer can
 * stream for many minutes: once no attempt follows, `letGoOfSentBody` hands its memory back.
 * Any other body goes as its chunks, each let go once undici has taken it for writing (see
 * SentChunks): an iterable rather than a Readable, which would cost a stream and its events.
 */
export function undiciBody (body: RequestBody): Buffer | Iterable<BodyChunk> {
  const only = soleBuffer(body)
  if (only !== null && ownsAllItsMemory(only)) return only
  return new SentChunks(body.chunks)
}

/** The body's bytes when it is held as exactly one buffer, else null. */
function soleBuffer (body: RequestBody): Buffer | null {
  const chunks = body.chunks
  return chunks.length === 1 && typeof chunks[0] !== 'string' ? chunks[0]! : null
}

/** Whether `bytes` is the whole of its ArrayBuffer: no other view shares it, so it can be let go. */
function ownsAllItsMemory (bytes: Buffer): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
}

/** The sockets each one-buffer body was written to (more than one when an attempt failed over). */
const writtenTo = new WeakMap<Buffer, Socket[]>()
/** Bodies to let go at the end of this turn of the event loop. */
const lettingGo: Buffer[] = []

/**
 * No attempt follows: a body undici was given as one Buffer (see undiciBody) gives its memory
 * back, its ArrayBuffer detached (undici's reference becomes an empty view). That is done after
 * the current turn, off the answer's way (detaching costs about 2 µs on Node 20), and only once
 * every socket it went to has written it out (or been closed): until then libuv writes from that
 * memory. A body still queued on a socket then stays as before, until its answer ends.
 */
export function letGoOfSentBody (body: RequestBody | undefined): void {
  const only = body === undefined ? null : soleBuffer(body)
  if (only === null || !writtenTo.has(only)) return
  if (lettingGo.push(only) === 1) setImmediate(letGoOfAll)
}

function letGoOfAll (): void {
  for (const bytes of lettingGo) {
    const sockets = writtenTo.get(bytes) // undefined for a body let go twice in one turn
    writtenTo.delete(bytes)
    if (sockets?.every((socket) => socket.destroyed || socket.writableLength === 0) === true) detach(bytes.buffer as ArrayBuffer)
  }
  lettingGo.length = 0
}

/** Detaches `buffer` (every view of it becomes empty) and frees its memory: `transfer` where the runtime has it (Node 22), else a transferring clone. */
const detach: (buffer: ArrayBuffer) => void = 'transfer' in ArrayBuffer.prototype
  ? (buffer) => { (buffer as ArrayBuffer & { transfer: (length: number) => ArrayBuffer }).transfer(0) }
  : (buffer) => { structuredClone(buffer, { transfer: [buffer] }) }

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

/**
 * Follows undici's body writes (once per process): bodies of several chunks cork the socket they
 * are written to (see SentChunks); a one-buffer body's socket is noted (see letGoOfSentBody).
 */
export function followBodyWrites (): void {
  if (following) return
  following = true
  subscribe('undici:client:sendHeaders', (message) => {
    const { request, headers, socket } = message as { request: { body?: unknown }, headers: string, socket: Socket }
    const body = request.body
    if (body instanceof SentChunks) body.corkOn(socket, headers)
    else if (Buffer.isBuffer(body)) {
      const sockets = writtenTo.get(body)
      if (sockets === undefined) writtenTo.set(body, [socket])
      else sockets.push(socket)
    }
  })
}

let following = false
