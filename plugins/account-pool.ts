import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { AccountPool, type Clock } from '../src/account-pool.js'
import type { Config } from '../src/config.js'
import { OAuthClient } from '../src/oauth-client.js'
import { TokenStore } from '../src/token-store.js'
import { UsageProbe, usageUrl } from '../src/usage-probe.js'

declare module 'fastify' {
  interface FastifyInstance {
    pool: AccountPool
    usageProbe: UsageProbe
    oauthClient: OAuthClient
    appConfig: Config
  }
}

export interface AccountPoolPluginOptions {
  config: Config
  clock?: Clock
  refreshMarginMs?: number
  issuerTimeoutMs?: number
}

/** Opens the token store (taking its lock), loads the pool and shares it as `fastify.pool`. */
async function accountPoolPlugin (fastify: FastifyInstance, opts: AccountPoolPluginOptions): Promise<void> {
  let pool: AccountPool | null = null
  const store = new TokenStore(opts.config.authsDir, {
    // Another process may own the tokens now: stop spending them at once; the server exits non-zero.
    onLockLost: (err) => {
      fastify.log.fatal({ err: err.message }, `lost the lock on ${opts.config.authsDir}: another process may now use it too; stopping`)
      pool?.retire(`this process lost its lock on ${opts.config.authsDir}`)
      pool?.emit('lock-lost', err)
    },
    onWarning: (message) => { fastify.log.warn(message) }
  })
  await store.open()
  store.onConflict = (keptAt) => {
    fastify.log.error({ keptAt }, 'the token file was changed by another program while the service ran; that version was kept aside, not overwritten')
  }
  const oauthClient = new OAuthClient(opts.config.issuer, opts.issuerTimeoutMs)
  try {
    pool = await AccountPool.create({
      store,
      oauth: oauthClient,
      cooldownMs: opts.config.cooldownMs,
      clock: opts.clock,
      refreshMarginMs: opts.refreshMarginMs,
      log: fastify.log
    })
  } catch (err) {
    await store.close()
    throw err
  }
  fastify.decorate('pool', pool)
  const ready = pool
  fastify.decorate('oauthClient', oauthClient)
  fastify.decorate('appConfig', opts.config)
  const usageProbe = new UsageProbe(ready, usageUrl(opts.config.upstream), opts.config.usageProbeIntervalMs, fastify.log)
  fastify.decorate('usageProbe', usageProbe)
  usageProbe.start()
  fastify.addHook('onClose', async () => {
    await usageProbe.stop()
    await ready.close()
    await store.close()
  })
}

export default fp(accountPoolPlugin, { fastify: '5.x', name: 'account-pool' })
