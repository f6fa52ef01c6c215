import type { FastifyReply, FastifyRequest } from 'fastify'
import { bearerToken, matchesSecret } from '../src/secrets.js'

export interface GuardOptions {
  /** Also take the key from `x-api-key` (the header the Anthropic SDKs send). */
  apiKeyHeader?: boolean
  /** The refusal's body in the client's own API shape (default `{"error":{"type":"unauthorized",…}}`). */
  refusal?: (request: FastifyRequest, message: string) => unknown
}

/**
 * An onRequest hook that lets a request through only with `Authorization: Bearer <one of secrets>`.
 * With no secrets configured it lets everything through (the service then listens on loopback only).
 */
export function bearerGuard (secrets: readonly string[], what: string, opts: GuardOptions = {}) {
  return async function guard (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (secrets.length === 0) return
    const apiKey = request.headers['x-api-key']
    const token = bearerToken(request.headers.authorization) ?? (opts.apiKeyHeader === true && typeof apiKey === 'string' && apiKey !== '' ? apiKey : null)
    if (token !== null && matchesSecret(token, secrets)) return
    const header = opts.apiKeyHeader === true ? 'an Authorization: Bearer or x-api-key header' : 'an Authorization: Bearer header'
    const message = token === null ? `${what} needs ${header}` : `wrong ${what}`
    await reply.code(401).header('www-authenticate', 'Bearer').send(opts.refusal?.(request, message) ?? { error: { type: 'unauthorized', message } })
  }
}
