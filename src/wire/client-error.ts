import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Answers what Node's HTTP parser rejects before any route sees it (headers too large, broken
 * framing, a bad request line) with the same `{"error":{…}}` body as every other error, then
 * closes the connection: after a framing error nothing more on it can be trusted.
 */
export function answerClientError (err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
  const message = status === 431
    ? 'the request headers are too large'
    : status === 408 ? 'the request took too long to arrive' : `malformed HTTP request (${err.code ?? 'parse error'})`
  const body = JSON.stringify({ error: { type: 'bad_request', message } })
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}
