import type { FastifyReply, FastifyRequest } from 'fastify'
import { fromAnotherSite, isJsonContentType } from '../src/cross-site.js'
import { errorBody } from './schemas.js'

const READ_ONLY = new Set(['GET', 'HEAD', 'OPTIONS'])

/** An onRequest hook refusing requests a page of another site made a browser send (see src/cross-site.ts). */
export async function refuseOtherSites (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!fromAnotherSite(request.headers)) return
  await reply.code(403).send(errorBody('cross_site_request', 'requests from web pages of other sites are refused'))
}

/**
 * An onRequest hook for the JSON APIs: a state-changing request with a body type other than JSON
 * (what an HTML form sends) is refused before any parsing. Requests without a body pass.
 */
export async function requireJsonBody (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const contentType = request.headers['content-type']
  if (READ_ONLY.has(request.method) || contentType === undefined || isJsonContentType(contentType)) return
  await reply.code(415).send(errorBody('unsupported_media_type', `this endpoint takes JSON (content-type: application/json), not ${contentType.split(';')[0]!.slice(0, 100)}`))
}
