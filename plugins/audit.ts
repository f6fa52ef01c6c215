import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { AuditLog, type AuditActor } from '../src/audit/audit-log.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The management actions' record: `audit.record({ action, actor: auditActor(request), … })`. */
    audit: AuditLog
  }
}

/**
 * Who made a management request. It passed the admin guard, so with an admin token configured it
 * presented it; without one only loopback callers get this far.
 */
export function auditActor (fastify: FastifyInstance, request: FastifyRequest): AuditActor {
  return { via: fastify.appConfig.adminToken === null ? 'local' : 'admin_token', remote: request.ip }
}

async function auditPlugin (fastify: FastifyInstance): Promise<void> {
  fastify.decorate('audit', new AuditLog(fastify.log))
}

export default fp(auditPlugin, { fastify: '5.x', name: 'audit' })
