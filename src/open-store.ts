import { hostname } from 'node:os'
import type { Config } from './config.js'
import { TokenStore } from './store/file-store.js'
import { KeyFile } from './store/key-file.js'
import type { KeyStore, PoolStore } from './store/port.js'
import { RedisStore } from './store/redis-store.js'

export interface OpenedStore {
  store: PoolStore
  close: () => Promise<void>
  /** The file store, when the pool lives in the auths dir (its lock and conflicts are watched). */
  file: TokenStore | null
  instance: string
  /** Where the client keys made at run time live. */
  keys: KeyStore
}

export interface StoreHooks {
  onLockLost: (err: Error) => void
  onWarning: (message: string) => void
  onConflict: (keptAt: string) => void
  log: { warn: (obj: object, msg?: string) => void, error: (obj: object, msg?: string) => void, info: (obj: object, msg?: string) => void }
}

/** Tuning of the shared store (tests shorten these). */
export interface SharedTuning {
  leaseMs?: number
  heartbeatMs?: number
}

/** The name of this instance in a shared pool: configured, else host name and port. */
export function instanceName (config: Config): string {
  return config.instanceName ?? `${hostname()}:${config.port === 0 ? process.pid : config.port}`
}

/**
 * The store the config asks for: Redis when a URL is set (the auths dir then holds no tokens),
 * else the token file. The lease outlives the issuer's timeout, so a refresh ends before its lease.
 */
export async function openStore (config: Config, hooks: StoreHooks, issuerTimeoutMs: number, tuning: SharedTuning = {}): Promise<OpenedStore> {
  const instance = instanceName(config)
  if (config.redisUrl !== null) {
    const store = await RedisStore.open({
      url: config.redisUrl,
      password: config.redisPassword,
      prefix: config.redisPrefix,
      instance,
      leaseMs: tuning.leaseMs ?? Math.max(60_000, issuerTimeoutMs * 2),
      heartbeatMs: tuning.heartbeatMs,
      log: hooks.log
    })
    return { store, close: async () => { await store.close() }, file: null, instance, keys: store.clientKeys }
  }
  const file = new TokenStore(config.authsDir, { onLockLost: hooks.onLockLost, onWarning: hooks.onWarning })
  await file.open()
  file.onConflict = hooks.onConflict
  return { store: file, close: async () => { await file.close() }, file, instance, keys: new KeyFile(config.authsDir) }
}
