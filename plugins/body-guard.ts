import type { FastifyReply, FastifyRequest } from 'fastify'
import { isUtf8Json } from '../src/wire/content-type.js'
import { errorBody } from './schemas.js'

const READ_ONLY = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * An onRequest hook for the JSON APIs: a state-changing request whose body is not plain UTF-8 JSON
 * is refused before any parsing: what an HTML form sends (so another site's form cannot drive the
 * API), and content encodings, which nothing here decodes. Requests without a body pass.
 */
export async function requireJsonBody (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (READ_ONLY.has(request.method)) return
  const encoding = request.headers['content-encoding']
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    await reply.code(415).send(errorBody('unsupported_media_type', 'request bodies are read as sent: drop the content-encoding'))
    return
  }
  const contentType = request.headers['content-type']
  if (contentType === undefined || isUtf8Json(contentType)) return
  await reply.code(415).send(errorBody('unsupported_media_type', `this endpoint takes JSON in UTF-8 (content-type: application/json), not ${contentType.slice(0, 100)}`))
}

/**
 * A preValidation hook: a route without a body schema takes no body (or `{}`), so that a stray
 * body is refused rather than ignored while the route acts.
 */
export async function refuseUnexpectedBody (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.routeOptions.schema?.body !== undefined) return
  const body = request.body
  if (body === undefined || (typeof body === 'object' && body !== null && !Array.isArray(body) && Object.keys(body).length === 0)) return
  await reply.code(400).send(errorBody('invalid_request', `${request.method} ${request.routeOptions.url ?? ''} takes no body`))
}
