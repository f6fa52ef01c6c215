// First: see warm-next-tick.ts.
import './warm-next-tick.js'
import type { Server } from 'node:http'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance, type FastifyReply } from 'fastify'
import accountPoolPlugin from '../plugins/account-pool.js'
import adminPlugin from '../plugins/admin.js'
import alertsPlugin from '../plugins/alerts.js'
import auditPlugin from '../plugins/audit.js'
import clientKeysPlugin from '../plugins/client-keys.js'
import clientsPlugin from '../plugins/clients.js'
import metricsPlugin from '../plugins/metrics.js'
import oauthPlugin from '../plugins/oauth.js'
import proxyPlugin from '../plugins/proxy.js'
import usageLedgerPlugin from '../plugins/usage-ledger.js'
import websocketPlugin from '../plugins/websocket.js'
import { refuseForeignHosts } from '../plugins/site-guard.js'
import type { Clock } from './pool/account-pool.js'
import type { Config } from './config.js'
import type { SharedTuning } from './open-store.js'
import { answerClientError } from './wire/client-error.js'
import { lingerForUnreadBody } from './wire/lingering-close.js'
import { ONE_READ } from './wire/body-budget.js'
import { lazyRequestLogger, serverLogger } from './logger.js'
import { list, schemaErrorSentence } from './schema-errors.js'

/** The methods a wrong-method answer may list in `Allow`. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

export interface BuildOptions {
  /** A ready logger (the server's); by default one is made from `config.logLevel`. */
  logger?: FastifyBaseLogger
  clock?: Clock
  refreshMarginMs?: number
  /** How long one call to the issuer may take (default 30 s). */
  issuerTimeoutMs?: number
  /** Lease and heartbeat times of a shared (Redis) pool. */
  shared?: SharedTuning
}

/** The composition root: registers the plugins and returns the app without listening. */
export async function buildApp (config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const serverOptions: FastifyHttpOptions<Server> = {
    // Fastify's own per-request lines would log URLs with OAuth codes; the proxy logs its own line.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyRequestLogger,
    // A request must arrive in full within this time (a stalled body gets 408); it does not
    // bound the answer: streams may legitimately stay open for many minutes.
    requestTimeout: config.requestBodyTimeoutMs,
    // Node checks for late requests this often (30 s by default, too coarse for short limits).
    // A body of up to one socket read (64 KiB) waits in its request without pausing the socket:
    // at Node 20's 16 KiB, every such body stopped the connection's reads and started them again
    // (two epoll_ctl calls per request). Node 22 and later have 64 KiB by default.
    http: { highWaterMark: ONE_READ, connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(config.requestBodyTimeoutMs / 4))), headersTimeout: Math.min(60_000, config.requestBodyTimeoutMs) },
    connectionTimeout: 0,
    keepAliveTimeout: 72_000,
    bodyLimit: 1024 * 1024,
    forceCloseConnections: false,
    return503OnClosing: true,
    // Malformed URLs and over-long ids get the same `{"error":{…}}` answer as every other error.
    frameworkErrors: (error, _request, reply: FastifyReply) => { void reply.code(error.statusCode ?? 400).send({ error: { type: 'bad_request', message: error.message } }) },
    clientErrorHandler: answerClientError,
    schemaErrorFormatter: schemaErrorSentence,
    routerOptions: { ignoreTrailingSlash: false }
  }
  const app = Fastify({ ...serverOptions, loggerInstance: opts.logger ?? serverLogger(config.logLevel) })

  app.setErrorHandler((error: { statusCode?: number, validation?: unknown, code?: string, message: string, retryAfterSeconds?: number }, request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
    // Answered before the body was read (too large, no memory for it): let the client finish sending.
    lingerForUnreadBody(request, reply)
    if (error.retryAfterSeconds !== undefined) {
      return reply.code(status).header('retry-after', String(error.retryAfterSeconds)).send({ error: { type: 'server_busy', message: error.message } })
    }
    if (status >= 500) {
      request.log.error({ err: { message: error.message, code: error.code } }, 'request failed')
      return reply.code(status).send({ error: { type: 'internal_error', message: 'internal error (see the server log)' } })
    }
    const type = error.validation !== undefined ? 'invalid_request' : status === 413 ? 'body_too_large' : 'bad_request'
    return reply.code(status).send({ error: { type, message: error.message } })
  })
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!
    // A known path asked with the wrong method: say which methods it takes (RFC 9110 §15.5.6).
    const allowed = allowedMethods(app, path)
    if (allowed.length > 0) {
      return reply.code(405).header('allow', allowed.join(', ')).send({ error: { type: 'method_not_allowed', message: `${request.method} is not allowed on ${path}; use ${list(allowed, 'or')}` } })
    }
    return reply.code(404).send({ error: { type: 'not_found', message: `no route ${request.method} ${path}` } })
  })

  // Without an admin token nothing but loopback names may reach anything (DNS rebinding).
  if (config.adminToken === null) app.addHook('onRequest', refuseForeignHosts)
  await app.register(accountPoolPlugin, { config, clock: opts.clock, refreshMarginMs: opts.refreshMarginMs, issuerTimeoutMs: opts.issuerTimeoutMs, shared: opts.shared })
  await app.register(alertsPlugin)
  await app.register(auditPlugin)
  await app.register(oauthPlugin)
  await app.register(metricsPlugin)
  await app.register(usageLedgerPlugin)
  await app.register(clientKeysPlugin)
  await app.register(proxyPlugin, { config })
  await app.register(websocketPlugin, { config })
  await app.register(clientsPlugin, { config })
  await app.register(adminPlugin)
  return app
}

/** The methods some route answers on this path (none for an unknown path). */
function allowedMethods (app: FastifyInstance, path: string): string[] {
  try {
    return METHODS.filter((method) => app.findRoute({ method, url: path }) !== null)
  } catch {
    return [] // a path the router cannot even read is simply unknown
  }
}
