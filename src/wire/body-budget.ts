import { Transform, type Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
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
  private readonly reserved = new WeakMap<FastifyRequest, number>()

  constructor (readonly maxBytes: number) {}

  get heldBytes (): number {
    return this.held
  }

  /**
   * A preParsing hook: reserves the declared length up front, or counts a body of unknown length as
   * it arrives. It takes Fastify's `done` rather than being async: it runs on every request, and
   * an async hook costs a promise and a microtask each time.
   */
  readonly preParsing = (request: FastifyRequest, reply: FastifyReply, payload: Readable, done: (err: Error | null, payload?: Readable) => void): void => {
    const declared = declaredLength(request)
    if (declared === null && request.headers['transfer-encoding'] === undefined) return done(null, payload) // no body
    if (declared !== null) {
      if (declared > this.maxBytes) return done(neverFits(this.maxBytes))
      if (!this.take(request, declared)) {
        lingerForUnreadBody(request, reply)
        void reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send(overBudget(this.maxBytes))
        return
      }
      return done(null, payload)
    }
    const counter = new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        if ((this.reserved.get(request) ?? 0) + chunk.length > this.maxBytes) callback(neverFits(this.maxBytes))
        else if (this.take(request, chunk.length)) callback(null, chunk)
        else callback(Object.assign(new Error(overBudget(this.maxBytes).error.message), { statusCode: 503, retryAfterSeconds: RETRY_AFTER_SECONDS }))
      }
    })
    done(null, payload.pipe(counter))
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
    const bytes = this.reserved.get(request)
    if (bytes === undefined) return
    this.reserved.delete(request)
    this.held -= bytes
  }

  /** An onResponse hook: whatever a request still holds is given back when its answer is done. */
  readonly onResponse = (request: FastifyRequest, _reply: FastifyReply, done: () => void): void => {
    this.release(request)
    done()
  }

  private take (request: FastifyRequest, bytes: number): boolean {
    if (this.hold(bytes) !== 'held') return false
    this.reserved.set(request, (this.reserved.get(request) ?? 0) + bytes)
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
 * when there is one, must match what arrives.
 */
export function readRequestBody (payload: Readable, declared: number | null, limit: number, oneBuffer = false): Promise<RequestBody> {
  return new Promise((resolve, reject) => {
    const fail = (status: number, code: string, message: string): void => {
      payload.removeListener('data', onData)
      payload.removeListener('end', onEnd)
      payload.resume() // the rest is read and discarded; the answer goes out meanwhile
      reject(Object.assign(new Error(message), { statusCode: status, code }))
    }
    const expected = declared !== null && declared <= limit ? declared : null
    const body = new BodyAssembly(expected, oneBuffer)
    const onData = (chunk: Buffer): void => {
      if (body.length + chunk.length > (expected ?? limit)) {
        if (expected !== null) fail(400, 'FST_ERR_CTP_INVALID_CONTENT_LENGTH', 'Request body size did not match Content-Length')
        else fail(413, 'FST_ERR_CTP_BODY_TOO_LARGE', 'Request body is too large')
        return
      }
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
      fail(413, 'FST_ERR_CTP_BODY_TOO_LARGE', 'Request body is too large')
      return
    }
    payload.on('data', onData)
    payload.once('end', onEnd)
    payload.once('error', onError)
  })
}

/** The request's Content-Length, or null when it sends none (chunked) or an unusable one. */
export function declaredLength (request: FastifyRequest): number | null {
  const length = request.headers['content-length']
  if (length === undefined) return null
  const value = Number(length)
  return Number.isSafeInteger(value) && value >= 0 ? value : null
}
