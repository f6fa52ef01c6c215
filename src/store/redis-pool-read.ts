import type { Redis } from 'ioredis'
import { emptyStore, type StoreData } from './port.js'
import { rawAccount } from './redis-records.js'
import { checkStoreData } from './store-check.js'
import { StoreError } from './store-error.js'

/** The whole pool under a prefix, checked like a token file (a StoreError in one line when it cannot be used). */
export async function readPool (redis: Redis, key: (...parts: string[]) => string, prefix: string): Promise<StoreData> {
  let ids: string[]
  let sticky: string | null
  try {
    ids = await redis.zrange(key('accounts'), 0, -1)
    sticky = await redis.get(key('sticky'))
  } catch (err) {
    throw new StoreError(`cannot read the pool from Redis: ${(err as Error).message}`)
  }
  const pipeline = redis.pipeline()
  for (const id of ids) pipeline.hgetall(key('account', id))
  const hashes = ids.length === 0 ? [] : (await pipeline.exec()) ?? []
  const raws: Array<Record<string, unknown>> = []
  hashes.forEach(([err, hash], index) => {
    if (err !== null) throw new StoreError(`cannot read account ${ids[index]} from Redis: ${err.message}`)
    const raw = parseRaw(hash as Record<string, string>, ids[index]!)
    if (raw !== null) raws.push(raw)
  })
  const checked = checkStoreData({ version: 1, sticky, accounts: raws })
  if (typeof checked === 'string') throw new StoreError(`the pool in Redis (prefix ${prefix}) is not valid: ${checked}`)
  if (checked.sticky !== null && !ids.includes(checked.sticky)) checked.sticky = null
  return checked.accounts.length === 0 && sticky === null ? emptyStore() : checked
}

/** One account's hash as a raw record, or null when it is gone (or half written). */
export function parseRaw (hash: Record<string, string>, id: string): Record<string, unknown> | null {
  try {
    return rawAccount(hash)
  } catch {
    throw new StoreError(`account ${id} in Redis is not valid JSON`)
  }
}
