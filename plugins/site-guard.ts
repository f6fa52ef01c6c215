import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { fromAnotherSite, isLoopbackHost } from '../src/wire/cross-site.js'
import { errorBody } from './schemas.js'

/**
 * An onRequest hook refusing requests a page of another site made a browser send (see src/cross-site.ts).
 * The guards here take Fastify's `done` rather than being async: they run on every request, and
 * an async hook costs a promise and a microtask each time.
 */
export function refuseOtherSites (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (!fromAnotherSite(request.headers)) return done()
  void reply.code(403).send(errorBody('cross_site_request', 'requests from web pages of other sites are refused'))
}

/**
 * An onRequest hook for a server without an admin token (it listens on loopback only): requests
 * for any host name but loopback are refused, which is what a DNS-rebinding page sends.
 */
export function refuseForeignHosts (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (isLoopbackHost(request.headers.host)) return done()
  void reply.code(403).send(errorBody('unknown_host', 'without an admin token this server answers only to localhost, 127.0.0.1 and [::1]; to use another name (e.g. behind a reverse proxy) set --admin-token or CODEX_EQ_ADMIN_TOKEN'))
}
