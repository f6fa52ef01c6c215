import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ClientKeys } from '../src/pool/client-keys.js'
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
  // `done` rather than async: a guard runs on every request, and an async hook costs a promise each time.
  return function guard (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (secrets.length === 0) return done()
    const token = presentedToken(request, opts)
    if (token !== null && matchesSecret(token, secrets)) return done()
    refuse(request, reply, what, token !== null, opts)
  }
}

/**
 * The same for the client APIs, with the run-time keys: the request is decorated with the key it
 * came with (`request.clientKey`; null while no key exists and none is required).
 */
export function clientKeyGuard (keys: ClientKeys, opts: GuardOptions = {}) {
  return function guard (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (!keys.required()) return done()
    const token = presentedToken(request, opts)
    const key = token === null ? null : keys.identify(token, request.raw.socket)
    if (key !== null) {
      request.clientKey = key
      return done()
    }
    refuse(request, reply, 'API key', token !== null, opts)
  }
}

function presentedToken (request: FastifyRequest, opts: GuardOptions): string | null {
  const apiKey = request.headers['x-api-key']
  return bearerToken(request.headers.authorization) ?? (opts.apiKeyHeader === true && typeof apiKey === 'string' && apiKey !== '' ? apiKey : null)
}

function refuse (request: FastifyRequest, reply: FastifyReply, what: string, presented: boolean, opts: GuardOptions): void {
  const header = opts.apiKeyHeader === true ? 'an Authorization: Bearer or x-api-key header' : 'an Authorization: Bearer header'
  const message = presented ? `wrong ${what}` : `${what} needs ${header}`
  void reply.code(401).header('www-authenticate', 'Bearer').send(opts.refusal?.(request, message) ?? { error: { type: 'unauthorized', message } })
}
