import type { FastifyReply, FastifyRequest } from 'fastify'
import { bearerToken, matchesSecret } from '../src/secrets.js'

/**
 * An onRequest hook that lets a request through only with `Authorization: Bearer <one of secrets>`.
 * With no secrets configured it lets everything through (the service then listens on loopback only).
 */
export function bearerGuard (secrets: readonly string[], what: string) {
  return async function guard (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (secrets.length === 0) return
    const token = bearerToken(request.headers.authorization)
    if (token !== null && matchesSecret(token, secrets)) return
    await reply.code(401).header('www-authenticate', 'Bearer').send({
      error: { type: 'unauthorized', message: token === null ? `${what} needs an Authorization: Bearer header` : `wrong ${what}` }
    })
  }
}
