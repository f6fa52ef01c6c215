import type { Agent, IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import type { UpstreamAnswer } from '../src/pool/failover-policy.js'
import { endsTurn, failureAnswer, frameType, isPrelude } from '../src/wire/ws-frames.js'

/** A refused upgrade's body is read to classify it; more than this is not an error message. */
const MAX_ERROR_BODY = 64 * 1024

/** How a turn started upstream: judged by the pool before the client sees anything. */
export interface TurnStart extends UpstreamAnswer {
  /** The frames read so far (prelude, or the failure): the client's, in order, if delivered. */
  held: string[]
  /** The turn is over (its last frame is in `held`). */
  over: boolean
  /** Resolves when the turn ends: null after its last frame, the error when the socket broke first. */
  done: Promise<Error | null>
}

/**
 * One upstream WebSocket for one account (`GET {upstream}/responses` upgraded), carrying that
 * account's turns one after another. A refused upgrade comes back as an HTTP answer, so the pool
 * judges it like any other.
 */
export class UpstreamSocket {
  private onFrame: ((text: string) => void) | null = null
  private onGone: ((err: Error) => void) | null = null
  /** The running turn's silence timer, and how to end the turn. */
  private idle: NodeJS.Timeout | null = null
  private endTurn: ((err: Error | null) => void) | null = null
  closed = false

  private constructor (private readonly socket: WebSocket, readonly headers: UpstreamAnswer['headers']) {
    socket.on('message', (data: Buffer) => { this.onFrame?.(data.toString('utf8')) })
    socket.on('close', () => { this.gone(Object.assign(new Error('upstream WebSocket closed'), { code: 'UPSTREAM_WS_CLOSED' })) })
    socket.on('error', (err) => { this.gone(err) })
  }

  /**
   * Opens a socket (through `agent`, the account's egress proxy, when it has one), or returns the
   * HTTP answer that refused the upgrade. Network errors reject.
   */
  static open (url: string, headers: Record<string, string>, timeoutMs: number, agent?: Agent): Promise<UpstreamSocket | UpstreamAnswer> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { headers, handshakeTimeout: timeoutMs, perMessageDeflate: false, maxPayload: 0, agent })
      let answered: UpstreamAnswer['headers'] = {}
      socket.once('upgrade', (res: IncomingMessage) => { answered = res.headers })
      socket.once('open', () => {
        socket.off('error', reject)
        resolve(new UpstreamSocket(socket, answered))
      })
      socket.once('unexpected-response', (_req, res: IncomingMessage) => {
        socket.off('error', reject)
        socket.on('error', () => {}) // the aborted handshake reports once more
        readBounded(res).then((body) => {
          resolve({ status: res.statusCode ?? 502, headers: res.headers, errorBody: body })
          socket.terminate()
        }, reject)
      })
      socket.once('error', reject)
    })
  }

  /**
   * Sends one turn and resolves once its first content arrives (delivered: later frames go to
   * `relay`), it failed before any content, it ended, or `holdMs` passed. Rejects when the socket
   * breaks before a verdict (the upstream's fault, as a broken HTTP connection).
   */
  start (frame: Buffer, o: { holdMs: number, idleMs: number }, relay: (text: string) => void): Promise<TurnStart> {
    return new Promise((resolve, reject) => {
      const held: string[] = []
      let settle: (err: Error | null) => void = () => {}
      const done = new Promise<Error | null>((resolve) => { settle = resolve })
      let decided = false
      const decide = (start: TurnStart): void => {
        decided = true
        clearTimeout(timer)
        resolve(start)
      }
      const timer = setTimeout(() => { decide({ status: 200, headers: this.headers, errorBody: null, held, over: false, done }) }, Math.max(o.holdMs, 1))
      // As over HTTP, only a long silence in a turn gives the upstream up (a reasoning turn is silent for minutes).
      this.idle = setTimeout(() => { this.silent() }, o.idleMs)
      const finishTurn = (err: Error | null): void => {
        this.finish()
        settle(err)
      }
      this.endTurn = finishTurn
      this.onFrame = (text) => {
        this.idle?.refresh()
        const type = frameType(text)
        if (decided) {
          relay(text)
          if (endsTurn(type)) finishTurn(null)
          return
        }
        held.push(text)
        if (isPrelude(type)) return
        const failure = type === 'error' || type === 'response.failed' ? failureAnswer(text, this.headers) : null
        const over = endsTurn(type)
        if (over) finishTurn(null)
        decide(failure !== null ? { ...failure, held, over: true, done } : { status: 200, headers: this.headers, errorBody: null, held, over, done })
      }
      this.onGone = (err) => {
        finishTurn(err)
        if (!decided) {
          decided = true
          clearTimeout(timer)
          reject(err)
        }
      }
      this.socket.send(frame, (err) => { if (err != null) this.onGone?.(err) })
    })
  }

  /** Closes the socket; a turn still running ends (as done, not broken: its client left). */
  close (): void {
    this.closed = true
    this.endTurn?.(null)
    this.stopTimer()
    this.onFrame = null
    this.onGone = null
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close()
  }

  private stopTimer (): void {
    if (this.idle !== null) clearTimeout(this.idle)
    this.idle = null
  }

  private finish (): void {
    this.endTurn = null
    this.stopTimer()
    this.onFrame = null
    this.onGone = null
  }

  private silent (): void {
    this.gone(Object.assign(new Error('upstream WebSocket silent for too long'), { code: 'UPSTREAM_IDLE' }))
    this.socket.terminate()
  }

  private gone (err: Error): void {
    if (this.closed) return
    this.closed = true
    this.onGone?.(err)
  }
}

function readBounded (res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (chunk: Buffer) => {
      if (size < MAX_ERROR_BODY) chunks.push(chunk)
      size += chunk.length
    })
    res.once('end', () => { resolve(Buffer.concat(chunks).toString('utf8').slice(0, MAX_ERROR_BODY)) })
    res.once('error', reject)
  })
}
