import { Redis, type RedisOptions } from 'ioredis'
import { StoreError } from './store-error.js'

export interface RedisTarget {
  url: string
  /** Used when the URL holds none. */
  password?: string | null
}

/** The URL as it may be shown: never with its password. */
export function shownUrl (url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.href
  } catch {
    return 'the Redis URL'
  }
}

/** Reconnects forever (ioredis' own loop), at most every 2 s. */
const RECONNECT = (times: number): number => Math.min(times * 100, 2_000)
const CONNECT_TIMEOUT_MS = 5_000

/**
 * A connected client. Commands fail at once while the connection is down (no offline queue): the
 * pool must not hang on a Redis that is away; its writes are retried when the connection is back.
 * A Redis that cannot be reached or refuses the password is a StoreError in one line.
 */
export async function connectRedis (target: RedisTarget, name: string): Promise<Redis> {
  const options: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: CONNECT_TIMEOUT_MS,
    connectionName: name.replace(/[^\w.:-]/g, '_'),
    // Only the first connection gives up: a start must fail with its reason, not wait forever.
    retryStrategy: () => null
  }
  if (target.password != null && new URL(target.url).password === '') options.password = target.password
  const client = new Redis(target.url, options)
  let lastError: Error | null = null
  client.on('error', (err: Error) => { lastError = err })
  try {
    await client.connect()
    await client.ping()
  } catch (err) {
    client.disconnect()
    throw new StoreError(`cannot use Redis at ${shownUrl(target.url)}: ${reason(lastError ?? err as Error)}`)
  }
  client.options.retryStrategy = RECONNECT
  return client
}

function reason (err: Error): string {
  const message = err.message ?? String(err)
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message)) return 'the password was refused (WRONGPASS); set it in the URL or CODEX_EQ_REDIS_PASSWORD'
  if (/NOAUTH/i.test(message)) return 'it requires a password (NOAUTH); set it in the URL or CODEX_EQ_REDIS_PASSWORD'
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ECONNREFUSED') return 'connection refused (is redis-server running there?)'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'its host name does not resolve'
  if (code === 'ETIMEDOUT' || /timeout/i.test(message)) return 'no answer (timed out)'
  // Messages of ioredis never carry the password; the URL is shown only in its redacted form above.
  return message.replaceAll(/redis(s)?:\/\/[^\s]*/g, '(url)')
}
