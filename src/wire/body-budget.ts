import { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { lingerForUnreadBody } from './lingering-close.js'
import { BodyAssembly, type RequestBody } from './request-body.js'

/** How long a client refused for memory is asked to wait before trying again. */
export const RETRY_AFTER_SECONDS = 2

/**
 * A cap on the request bytes held in memory at once across all /v1 requests. Bodies are buffered
 * whole so that failover can send them again; without a cap, a handful of large bodies at once
 * holds gigabytes. A body that does not fit now is refused with 503 and Retry-After (it may fit in
 * a moment), before it is read. A body's bytes count from its arrival until the proxy lets it go.
 */
export class BodyBudget {
  private held = 0

  constructor (readonly maxBytes: number) {}

  get heldBytes (): number {
    return this.held
  }

  /**
   * An onRequest hook (after the guards): reserves the declared length up front; a body of unknown
   * length is counted as it arrives instead (`countChunk`, given to readRequestBody). A hook of
   * this phase rather than preParsing: a phase with hooks costs Fastify three closures per request.
   * It takes Fastify's `done` rather than being async: an async hook costs a promise and a
   * microtask each time.
   */
  readonly onRequest = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const declared = declaredLength(request)
    if (declared === null) return done()
    if (declared > this.maxBytes) return done(neverFits(this.maxBytes))
    if (!this.take(request, declared)) {
      lingerForUnreadBody(request, reply)
      void reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send(overBudget(this.maxBytes))
      return
    }
    done()
  }

  /** Counts a chunk of a body of unknown length as it arrives: null once held, or the request's error. */
  countChunk (request: FastifyRequest, bytes: number): Error | null {
    if (request.heldBodyBytes + bytes > this.maxBytes) return neverFits(this.maxBytes)
    if (this.take(request, bytes)) return null
    return Object.assign(new Error(overBudget(this.maxBytes).error.message), { statusCode: 503, retryAfterSeconds: RETRY_AFTER_SECONDS })
  }

  /**
   * Holds `bytes` not tied to an HTTP request (a WebSocket frame kept for re-sending): 'held', or why
   * not — 'busy' (it may fit in a moment) or 'never' (it is larger than the whole budget). Held
   * bytes are given back with `letGo`.
   */
  hold (bytes: number): 'held' | 'busy' | 'never' {
    if (bytes > this.maxBytes) return 'never'
    if (this.held + bytes > this.maxBytes && bytes > 0) return 'busy'
    this.held += bytes
    return 'held'
  }

  letGo (bytes: number): void {
    this.held -= bytes
  }

  /** Gives back a request's bytes (once; later calls do nothing). */
  release (request: FastifyRequest): void {
    const bytes = request.heldBodyBytes
    if (bytes === 0) return
    request.heldBodyBytes = 0
    this.held -= bytes
  }

  /** An onResponse hook: whatever a request still holds is given back when its answer is done. */
  readonly onResponse = (request: FastifyRequest, _reply: FastifyReply, done: () => void): void => {
    this.release(request)
    done()
  }

  private take (request: FastifyRequest, bytes: number): boolean {
    if (this.hold(bytes) !== 'held') return false
    request.heldBodyBytes += bytes
    return true
  }
}

/** A body larger than the whole budget would be refused with Retry-After forever: it is too large. */
function neverFits (maxBytes: number): Error {
  return Object.assign(new Error(neverFitsMessage(maxBytes)), { statusCode: 413 })
}

export function neverFitsMessage (maxBytes: number): string {
  return `the request body is larger than the most the proxy holds at once (--max-buffered ${maxBytes} bytes)`
}

export function overBudget (maxBytes: number): { error: { type: string, message: string } } {
  return { error: { type: 'server_busy', message: `the proxy is holding as many request bytes as it may (--max-buffered ${maxBytes} bytes); try again in a moment` } }
}

/**
 * Reads a request body (`RequestBody`, put together by `BodyAssembly`: chunks kept as they came
 * up to CHUNKED_UP_TO, one buffer beyond, or always one with `oneBuffer`). The declared length,
 * when there is one, must match what arrives. A body of unknown length is given chunk by chunk to
 * `countChunk` (the budget's), which may refuse it.
 */
export function readRequestBody (payload: Readable, declared: number | null, limit: number, o: { oneBuffer?: boolean, countChunk?: (bytes: number) => Error | null } = {}): Promise<RequestBody> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      payload.removeListener('data', onData)
      payload.removeListener('end', onEnd)
      payload.resume() // the rest is read and discarded; the answer goes out meanwhile
      reject(err)
    }
    const failWith = (status: number, code: string, message: string): void => { fail(Object.assign(new Error(message), { statusCode: status, code })) }
    const expected = declared !== null && declared <= limit ? declared : null
    const countChunk = declared === null ? o.countChunk : undefined
    const body = new BodyAssembly(expected, o.oneBuffer === true)
    const onData = (chunk: Buffer): void => {
      if (body.length + chunk.length > (expected ?? limit)) {
        if (expected !== null) failWith(400, 'FST_ERR_CTP_INVALID_CONTENT_LENGTH', 'Request body size did not match Content-Length')
        else failWith(413, 'FST_ERR_CTP_BODY_TOO_LARGE', 'Request body is too large')
        return
      }
      const refused = countChunk?.(chunk.length) ?? null
      if (refused !== null) return fail(refused)
      body.add(chunk)
    }
    const onEnd = (): void => {
      payload.removeListener('data', onData)
      payload.removeListener('error', onError)
      if (expected !== null && body.length !== expected) {
        reject(Object.assign(new Error('Request body size did not match Content-Length'), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' }))
        return
      }
      resolve(body.finish())
    }
    const onError = (err: Error): void => {
      payload.removeListener('data', onData)
      payload.removeListener('end', onEnd)
      reject(Object.assign(err, { statusCode: (err as { statusCode?: number }).statusCode ?? 400 }))
    }
    if (declared !== null && declared > limit) {
      failWith(413, 'FST_ERR_CTP_BODY_TOO_LARGE', 'Request body is too large')
      return
    }
    // Fastify asks for the body while Node's parser is still in the read that brought the headers;
    // the rest of that read (for most requests, the whole body) is parsed before the next microtask.
    queueMicrotask(() => {
      if (bufferedWhole(payload, expected)) {
        // Taken from the stream's buffer in one read(): none of flowing mode's ticks and events.
        // 'end' still follows, with nobody left to hear it. Exactly the declared length: no check can fail.
        const whole = payload.read() as Buffer | null
        if (whole !== null) body.add(whole)
        onEnd()
        return
      }
      payload.on('data', onData)
      payload.once('end', onEnd)
      payload.once('error', onError)
    })
  })
}

/** What one socket read brings (Node reads 64 KiB at a time); the server holds this much per request before pausing its socket. */
export const ONE_READ = 64 * 1024

/**
 * An HTTP request body already in the stream's buffer whole, none of it read yet: most bodies come
 * in the same socket read as their headers, and Node's parser has pushed them as one chunk. Only
 * bodies of up to one read: read() joins what it returns, and a body that came in several chunks
 * is kept as they came.
 */
function bufferedWhole (payload: Readable, declared: number | null): boolean {
  return payload instanceof IncomingMessage && declared !== null && declared <= ONE_READ && payload.readableLength === declared && !payload.readableDidRead
}

/** The request's Content-Length, or null when it sends none (chunked) or an unusable one. */
export function declaredLength (request: FastifyRequest): number | null {
  const length = request.headers['content-length']
  if (length === undefined) return null
  const value = Number(length)
  return Number.isSafeInteger(value) && value >= 0 ? value : null
}
