import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import { bearerGuard } from './bearer-guard.js'
import { refuseUnexpectedBody, requireJsonBody } from './body-guard.js'
import { refuseOtherSites } from './site-guard.js'

/**
 * The dashboard loads only its own files: no inline script or style, no framing (clickjacking of the
 * remove buttons), nothing fetched from elsewhere. No HSTS and no upgrade-insecure-requests: the
 * service speaks plain HTTP, often on a LAN address.
 */
export const SECURITY_HEADERS: FastifyHelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'"],
      connectSrc: ["'self'"],
      formAction: ["'self'"],
      baseUri: ["'none'"],
      objectSrc: ["'none'"],
      frameAncestors: ["'none'"]
    }
  },
  strictTransportSecurity: false,
  xFrameOptions: { action: 'deny' }
}

/**
 * Makes `api` (an encapsulated scope) a management API scope: security headers, no other site's
 * pages, the admin token when one is set, JSON bodies only and no stray bodies.
 */
export async function guardManagement (api: FastifyInstance, adminToken: string | null): Promise<void> {
  await api.register(fastifyHelmet, SECURITY_HEADERS)
  api.addHook('onRequest', refuseOtherSites)
  api.addHook('onRequest', bearerGuard(adminToken === null ? [] : [adminToken], 'admin token'))
  api.addHook('onRequest', requireJsonBody)
  api.addHook('preValidation', refuseUnexpectedBody)
}
