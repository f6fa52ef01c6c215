import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { PoolMetrics } from '../src/metrics.js'
import { bearerGuard } from './bearer-guard.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: PoolMetrics
  }
}

/** Prometheus `/metrics`, guarded by the admin token when one is set. */
async function metricsPlugin (fastify: FastifyInstance): Promise<void> {
  const metrics = new PoolMetrics(fastify.pool)
  fastify.decorate('metrics', metrics)
  const guard = bearerGuard(fastify.appConfig.adminToken === null ? [] : [fastify.appConfig.adminToken], 'admin token')
  fastify.get('/metrics', { onRequest: guard }, async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })
}

export default fp(metricsPlugin, { fastify: '5.x', name: 'metrics', dependencies: ['account-pool'] })
