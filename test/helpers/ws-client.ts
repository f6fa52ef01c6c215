import WebSocket from 'ws'

/** A Codex-like WebSocket client of `/responses`: one turn at a time, events collected until the turn ends. */
export interface WsClient {
  socket: WebSocket
  /** Sends a `response.create` frame and resolves with every frame up to the turn's last one. */
  turn (body: Record<string, unknown>): Promise<Array<Record<string, any>>>
  close (): Promise<void>
}

const LAST = new Set(['response.completed', 'response.failed', 'response.incomplete', 'error'])

/** Opens a WebSocket; rejects with `{ status }` when the upgrade is answered with an HTTP status. */
export function openWs (url: string, headers: Record<string, string> = {}): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers: { 'openai-beta': 'responses_websockets=2026-02-06', ...headers } })
    socket.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString('utf8') })
      res.on('end', () => { reject(Object.assign(new Error(`upgrade refused: ${res.statusCode ?? 0}`), { status: res.statusCode, body })) })
    })
    socket.once('error', reject)
    socket.once('open', () => {
      socket.off('error', reject)
      let waiting: { frames: Array<Record<string, any>>, done: (frames: Array<Record<string, any>>) => void, fail: (err: Error) => void } | null = null
      socket.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString('utf8')) as Record<string, any>
        if (waiting === null) return
        waiting.frames.push(frame)
        if (LAST.has(frame.type)) {
          const w = waiting
          waiting = null
          w.done(w.frames)
        }
      })
      socket.on('close', (code) => {
        const w = waiting
        waiting = null
        w?.fail(new Error(`socket closed (${code}) before the turn ended`))
      })
      resolve({
        socket,
        turn (body) {
          return new Promise((done, fail) => {
            waiting = { frames: [], done, fail }
            socket.send(JSON.stringify({ type: 'response.create', ...body }))
          })
        },
        close () {
          return new Promise((done) => {
            if (socket.readyState === WebSocket.CLOSED) return done()
            socket.once('close', () => { done() })
            socket.close()
          })
        }
      })
    })
  })
}
