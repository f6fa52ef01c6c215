import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { AccountPool, type Clock } from '../src/pool/account-pool.js'
import type { Config } from '../src/config.js'
import { OAuthClient } from '../src/tokens/oauth-client.js'
import { openStore, type SharedTuning } from '../src/open-store.js'
import type { KeyStore, SharedStore } from '../src/store/port.js'
import { UsageProbe, usageUrl } from '../src/pool/usage-probe.js'
import { EgressDispatchers } from '../src/egress/egress-proxy.js'

declare module 'fastify' {
  interface FastifyInstance {
    pool: AccountPool
    usageProbe: UsageProbe
    oauthClient: OAuthClient
    appConfig: Config
    /** The dispatchers of the accounts' egress proxies (one per distinct proxy). */
    egress: EgressDispatchers
    /** Where run-time client keys live: the auths dir, or the store shared by several instances. */
    keyStore: KeyStore
    /** The store shared with other instances, if any (the usage ledger lives there too). */
    sharedStore: SharedStore | null
  }
}

export interface AccountPoolPluginOptions {
  config: Config
  clock?: Clock
  refreshMarginMs?: number
  issuerTimeoutMs?: number
  shared?: SharedTuning
}

/** Opens the token store (taking its lock), loads the pool and shares it as `fastify.pool`. */
async function accountPoolPlugin (fastify: FastifyInstance, opts: AccountPoolPluginOptions): Promise<void> {
  let pool: AccountPool | null = null
  const opened = await openStore(opts.config, {
    // Another process may own the tokens now: stop spending them at once; the server exits non-zero.
    onLockLost: (err) => {
      fastify.log.fatal({ err: err.message }, `lost the lock on ${opts.config.authsDir}: another process may now use it too; stopping`)
      pool?.retire(`this process lost its lock on ${opts.config.authsDir}`)
      pool?.emit('lock-lost', err)
    },
    onWarning: (message) => { fastify.log.warn(message) },
    onConflict: (keptAt) => {
      fastify.log.error({ keptAt }, 'the token file was changed by another program while the service ran; that version was kept aside, not overwritten')
    },
    log: fastify.log
  }, opts.issuerTimeoutMs ?? 30_000, opts.shared)
  const store = opened.store
  const egress = new EgressDispatchers({ headersTimeout: opts.config.upstreamHeadersTimeoutMs, bodyTimeout: opts.config.streamIdleTimeoutMs })
  const fetchVia = (proxy: string | null): typeof fetch => egress.fetchVia(proxy)
  const oauthClient = new OAuthClient(opts.config.issuer, fetchVia, opts.issuerTimeoutMs)
  try {
    pool = await AccountPool.create({
      store,
      oauth: oauthClient,
      cooldownMs: opts.config.cooldownMs,
      clock: opts.clock,
      refreshMarginMs: opts.refreshMarginMs,
      upstreamTrouble: { restStartMs: opts.config.upstreamRestMs, restMaxMs: Math.max(opts.config.upstreamRestMs, opts.config.upstreamRestMaxMs) },
      log: fastify.log
    })
  } catch (err) {
    await opened.close()
    await egress.close()
    throw err
  }
  fastify.decorate('pool', pool)
  const ready = pool
  fastify.decorate('oauthClient', oauthClient)
  fastify.decorate('appConfig', opts.config)
  fastify.decorate('egress', egress)
  fastify.decorate('keyStore', opened.keys)
  fastify.decorate('sharedStore', store.shared ?? null)
  const usageProbe = new UsageProbe(ready, usageUrl(opts.config.upstream), opts.config.usageProbeIntervalMs, fastify.log, fetchVia)
  fastify.decorate('usageProbe', usageProbe)
  usageProbe.start()
  fastify.addHook('onClose', async () => {
    await usageProbe.stop()
    await ready.close()
    await opened.close()
    await egress.close()
  })
}

export default fp(accountPoolPlugin, { fastify: '5.x', name: 'account-pool' })
