import type pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { isLoopback, type Config } from './config.js'
import { serverLogger } from './logger.js'
import { KeyFile } from './store/key-file.js'
import { sharedKeyCount } from './store/redis-keys.js'
import { StartupError } from './startup-error.js'
import { applyServerFlags } from './server-flags.js'

/** Refuses settings that would expose the pool: anything beyond loopback needs an admin token. */
export async function checkExposure (config: Config, log: pino.Logger): Promise<void> {
  if (isLoopback(config.host)) return
  if (config.adminToken === null) {
    throw new StartupError(`refusing to listen on ${config.host} without an admin token: set --admin-token or CODEX_EQ_ADMIN_TOKEN (or listen on 127.0.0.1)`)
  }
  if (config.apiKeys.length === 0 && await managedKeyCount(config) === 0) {
    log.warn(`LISTENING ON ${config.host} WITHOUT API KEYS: anyone who can reach this port can spend the pool's quota through /v1. Set --api-key or CODEX_EQ_API_KEYS, or make a client key (codex-eq keys create NAME).`)
  }
}

/**
 * The client keys made at run time: in the shared store with a Redis URL, else in the auths dir's key
 * file. A store that cannot be read counts as none here; the app refuses it when it opens it.
 */
async function managedKeyCount (config: Config): Promise<number> {
  if (config.redisUrl !== null) {
    return await sharedKeyCount({ url: config.redisUrl, password: config.redisPassword }, config.redisPrefix).catch(() => 0)
  }
  return await new KeyFile(config.authsDir).load().then((keys) => keys.length, () => 0)
}

/** Starts the service: logger, app, listen, and a graceful stop on SIGTERM/SIGINT. */
export async function startServer (config: Config): Promise<FastifyInstance> {
  applyServerFlags()
  const log = serverLogger(config.logLevel)
  await checkExposure(config, log)
  const app = await buildApp(config, { logger: log })
  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (err) {
    // A start that fails (port busy) releases the auths dir's lock and leaves no owner record behind.
    await app.close().catch(() => {})
    throw err
  }
  installGracefulStop(app, config.shutdownGraceMs, log)
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  const shown = config.host.includes(':') ? `[${config.host}]` : config.host
  log.info({ accounts: app.pool.list().length, authsDir: config.authsDir, upstream: config.upstream, issuer: config.issuer },
    `codex-equilibrium listening on http://${shown}:${port} (dashboard /, proxy /v1 → ${config.upstream}); sign-in at ${config.issuer}; accounts in ${config.authsDir}`)
  return app
}

/**
 * On SIGTERM or SIGINT: stop accepting, let open streams finish for up to `graceMs`, then cut the
 * rest, write the state and exit 0 — what systemd expects of a clean stop. A state that cannot be
 * written (it may hold rotated refresh tokens) makes the exit non-zero, with the reason logged.
 */
export function installGracefulStop (app: FastifyInstance, graceMs: number, log: pino.Logger): void {
  let stopping = false
  /** `failed`: stop at once and exit non-zero whatever happens (systemd restarts the service). */
  const stop = (signal: string, failed = false): void => {
    if (stopping) return
    stopping = true
    if (failed) graceMs = 0
    log.info({ signal, graceMs }, 'stopping: letting open streams finish')
    const cut = setTimeout(() => {
      log.warn('grace period over: closing the remaining connections')
      app.server.closeAllConnections()
    }, graceMs)
    cut.unref()
    // Clients keep connections alive after a stream ends (the Codex CLI does); an idle one would
    // hold the stop until the grace is over, so they are closed as soon as they fall idle.
    const closeIdle = setInterval(() => { app.server.closeIdleConnections() }, 250)
    closeIdle.unref()
    app.close().then(() => {
      clearTimeout(cut)
      clearInterval(closeIdle)
      log.info('stopped')
      log.flush()
      process.exit(failed ? 1 : 0)
    }, (err: unknown) => {
      log.fatal({ err: (err as Error).message }, `stopped with an error: ${(err as Error).message}`)
      log.flush()
      process.exit(1)
    })
  }
  // Another process may hold the tokens now: using them any longer could spend a rotated refresh token.
  app.pool.once('lock-lost', () => { stop('lock lost', true) })
  process.once('SIGTERM', () => { stop('SIGTERM') })
  process.once('SIGINT', () => { stop('SIGINT') })
}
