import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ClientKeys } from '../src/pool/client-keys.js'
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
    await refuse(reply, token === null ? `${what} needs an Authorization: Bearer header` : `wrong ${what}`)
  }
}

/**
 * The same for the client APIs, with the run-time keys: the request is decorated with the key it
 * came with (`request.clientKey`; null while no key exists and none is required).
 */
export function clientKeyGuard (keys: ClientKeys) {
  return async function guard (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!keys.required()) return
    const token = bearerToken(request.headers.authorization)
    const key = token === null ? null : keys.identify(token)
    if (key !== null) {
      request.clientKey = key
      return
    }
    await refuse(reply, token === null ? 'API key needs an Authorization: Bearer header' : 'wrong API key')
  }
}

async function refuse (reply: FastifyReply, message: string): Promise<void> {
  await reply.code(401).header('www-authenticate', 'Bearer').send({ error: { type: 'unauthorized', message } })
}
