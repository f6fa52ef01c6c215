import type { FastifyReply, FastifyRequest } from 'fastify'
import { fromAnotherSite } from '../src/cross-site.js'
import { errorBody } from './schemas.js'

/** An onRequest hook refusing requests a page of another site made a browser send (see src/cross-site.ts). */
export async function refuseOtherSites (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!fromAnotherSite(request.headers)) return
  await reply.code(403).send(errorBody('cross_site_request', 'requests from web pages of other sites are refused'))
}
