import type { ChainableCommander, Redis } from 'ioredis'
import type { StoredKey } from './key-file.js'
import type { KeyStore } from './port.js'
import { connectRedis, type RedisTarget } from './redis-connect.js'

/** The hash of the client keys, after the pool's prefix. */
export const CLIENT_KEYS = 'client-keys'

/** How many client keys the shared pool under `prefix` holds (for the start-up checks, before the store opens). */
export async function sharedKeyCount (target: RedisTarget, prefix: string): Promise<number> {
  const redis = await connectRedis(target, 'codex-eq:start-check')
  try {
    return await redis.hlen(prefix + CLIENT_KEYS)
  } finally {
    redis.disconnect()
  }
}

const UPDATE_IF_PRESENT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1`

/**
 * The client keys in the shared store: one hash field per key (its secret only as a hash, as in the
 * key file), so two instances changing different keys never undo each other. A change is announced;
 * the other instances read the keys again.
 */
export class RedisKeys implements KeyStore {
  private known = new Map<string, string>()
  private readonly listeners: Array<(keys: StoredKey[]) => void> = []

  constructor (private readonly redis: Redis, private readonly key: string, private readonly announce: () => void) {}

  async load (): Promise<StoredKey[]> {
    const hash = await this.redis.hgetall(this.key)
    this.known = new Map(Object.entries(hash))
    return [...this.known.values()].map((text) => JSON.parse(text) as StoredKey).sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
  }

  async save (keys: readonly StoredKey[]): Promise<void> {
    const next = new Map(keys.map((key) => [key.id, JSON.stringify(key)]))
    const multi = this.redis.multi()
    let changes = 0
    for (const [id, text] of next) {
      const was = this.known.get(id)
      if (was === text) continue
      // A key we knew is only updated (its last use), never brought back after another instance deleted it.
      if (was === undefined) multi.hset(this.key, id, text)
      else multi.eval(UPDATE_IF_PRESENT, 1, this.key, id, text)
      changes++
    }
    for (const id of this.known.keys()) {
      if (next.has(id)) continue
      multi.hdel(this.key, id)
      changes++
    }
    if (changes === 0) return
    await multi.exec()
    this.known = next
    this.announce()
  }

  /** Queues the keys as this instance last knew them, each only where missing: for a Redis that came back without its data. */
  queueRestore (multi: ChainableCommander): void {
    for (const [id, text] of this.known) multi.hsetnx(this.key, id, text)
  }

  onChange (listener: (keys: StoredKey[]) => void): void {
    this.listeners.push(listener)
  }

  async changedElsewhere (): Promise<void> {
    const keys = await this.load()
    for (const listener of this.listeners) listener(keys)
  }
}
