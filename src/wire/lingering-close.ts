import { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'

/** How long a client may go on sending a body that was already answered (nginx: lingering_time 30 s). */
export const LINGER_MS = 30_000

/**
 * For an answer sent before the request body was read in full (413, a 503 for memory): close
 * only once the client has finished sending, or after LINGER_MS. Closing at once, while the client
 * is still sending, makes its TCP stack reset the connection, and the client often loses the
 * answer to that reset. Fastify marks such answers `connection: close` (Node then destroys the
 * socket); without it Node reads and discards the rest of the body, the timer bounds that, and
 * the connection is closed once the body is in.
 */
export function lingerForUnreadBody (request: FastifyRequest, reply: FastifyReply): void {
  const raw = request.raw
  if (raw.complete) return
  reply.removeHeader('connection')
  const socket = raw.socket
  if (!(socket instanceof Socket)) return // an injected request (tests) has no connection to keep
  const timer = setTimeout(() => { if (!raw.complete) socket.destroy() }, LINGER_MS)
  timer.unref()
  raw.once('end', () => {
    clearTimeout(timer)
    socket.end() // the body is in (and discarded): now the connection may close cleanly
  })
  socket.once('close', () => { clearTimeout(timer) })
}
