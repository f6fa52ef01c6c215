import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { LISTEN_BACKLOG, serveAsChild } from './child.js'
import { QUOTA_HEADERS, stampedEvent, turnEvents } from './codex-turn.js'

/**
 * The benchmark's Codex backend: no auth checks, reads the whole body, answers every request with
 * a turn. By default the 8 events at once (as fast as possible); with `?events=N&interval_ms=M`
 * N events M ms apart, each stamped with the time it was written. Over WebSocket (an upgraded
 * `/responses`) each frame gets the same turn as text frames. It counts the request bytes it
 * received (bodies and frames): `bytes` over IPC.
 */
const TURN = turnEvents().map((event) => Buffer.from(event))
const HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': 'req_bench', ...QUOTA_HEADERS }

let received = 0
const FRAMES = TURN.map((event) => event.toString('utf8').split('\n').find((line) => line.startsWith('data: '))!.slice(6))

const server = createServer((req, res) => {
  req.on('data', (chunk: Buffer) => { received += chunk.length })
  req.once('end', () => {
    const query = req.url!.indexOf('?')
    res.writeHead(200, HEADERS)
    if (query === -1) {
      for (const event of TURN) res.write(event)
      res.end()
      return
    }
    const params = new URLSearchParams(req.url!.slice(query + 1))
    slowTurn(res, Number(params.get('events') ?? 8), Number(params.get('interval_ms') ?? 500))
  })
})

function slowTurn (res: import('node:http').ServerResponse, events: number, intervalMs: number): void {
  let sent = 0
  const next = (): void => {
    if (res.destroyed) return
    res.write(stampedEvent(sent === events - 1 ? 'response.completed' : 'response.output_text.delta', sent))
    sent++
    if (sent === events) res.end()
    else setTimeout(next, intervalMs)
  }
  next()
}

const sockets = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 0 })
server.on('upgrade', (req, socket, head) => {
  sockets.handleUpgrade(req, socket, head, (ws) => {
    ws.on('message', (data: Buffer) => {
      received += data.length
      for (const frame of FRAMES) ws.send(frame)
    })
  })
})
process.on('message', (message) => {
  if (message === 'bytes') process.send!({ bytes: received })
})

server.keepAliveTimeout = 60_000
server.listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, () => {
  serveAsChild((server.address() as AddressInfo).port, async () => {
    server.closeAllConnections()
    server.close()
  })
})
