import type { FastifyReply, FastifyRequest } from 'fastify'
import { fromAnotherSite, isLoopbackHost } from '../src/wire/cross-site.js'
import { errorBody } from './schemas.js'

/** An onRequest hook refusing requests a page of another site made a browser send (see src/cross-site.ts). */
export async function refuseOtherSites (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!fromAnotherSite(request.headers)) return
  await reply.code(403).send(errorBody('cross_site_request', 'requests from web pages of other sites are refused'))
}

/**
 * An onRequest hook for a server without an admin token (it listens on loopback only): requests
 * for any host name but loopback are refused, which is what a DNS-rebinding page sends.
 */
export async function refuseForeignHosts (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (isLoopbackHost(request.headers.host)) return
  await reply.code(403).send(errorBody('unknown_host', 'without an admin token this server answers only to localhost, 127.0.0.1 and [::1]; to use another name (e.g. behind a reverse proxy) set --admin-token or CODEX_EQ_ADMIN_TOKEN'))
}
