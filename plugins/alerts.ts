import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { alertOnPoolEvents } from '../src/alerts/pool-alerts.js'
import { WebhookAlerts } from '../src/alerts/webhook-alerts.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Alerts to the configured webhooks: `alerts.emit({ type, … })` queues and returns at once. */
    alerts: WebhookAlerts
  }
}

/** Webhook alerts for the pool's events (`--webhook`, `--webhook-secret`). */
async function alertsPlugin (fastify: FastifyInstance): Promise<void> {
  const { webhooks, webhookSecret } = fastify.appConfig
  const alerts = new WebhookAlerts({ urls: webhooks, secret: webhookSecret, log: fastify.log })
  fastify.decorate('alerts', alerts)
  if (!alerts.enabled) return
  const stop = alertOnPoolEvents(fastify.pool, alerts)
  fastify.addHook('onClose', async () => {
    stop()
    alerts.close()
  })
}

export default fp(alertsPlugin, { fastify: '5.x', name: 'alerts', dependencies: ['account-pool'] })
