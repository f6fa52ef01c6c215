import type { ChainableCommander } from 'ioredis'
import type { StoreData } from './port.js'
import type { Message } from './redis-messages.js'
import { partsOf, type AccountParts } from './redis-records.js'
import { MOVE_STICKY, WRITE_TOKENS } from './redis-scripts.js'

/** What was queued on a MULTI to bring Redis from what this instance last synced to `data`. */
export interface PoolWrite {
  /** Commands queued (0: nothing changed); the announcements are not among them. */
  commands: number
  /** To run once the MULTI went through: what is synced now. */
  afterwards: Array<() => void>
  /** Compare-and-set token writes: their index in the results, and their account. */
  tokenWrites: Array<{ index: number, id: string }>
  /** The index of the sticky choice's compare-and-set in the results (-1: unchanged). */
  stickyIndex: number
  /** What to announce to the other instances. */
  messages: Message[]
}

/**
 * Queues on `multi` only what changed since the last sync, part by part (see redis-records.ts):
 * new accounts whole, a changed part alone, served requests as an increment (every instance adds its
 * own), tokens and the sticky choice by compare-and-set from what this instance saw last.
 */
export function queuePoolWrite (multi: ChainableCommander, data: StoreData, synced: Map<string, AccountParts>, syncedSticky: string | null, o: { instance: string, key: (...parts: string[]) => string }): PoolWrite {
  const afterwards: Array<() => void> = []
  const tokenWrites: Array<{ index: number, id: string }> = []
  const messages: Message[] = []
  let stickyIndex = -1
  let commands = 0
  const present = new Set<string>()
  for (const account of data.accounts) {
    present.add(account.id)
    const parts = partsOf(account)
    const was = synced.get(account.id)
    const key = o.key('account', account.id)
    if (was === undefined) {
      multi.hset(key, { meta: parts.meta, tokens: parts.tokens, fp: parts.fp, state: parts.state, stats: parts.stats, requests: String(parts.requests) })
      multi.zadd(o.key('accounts'), account.addedAt, account.id)
      commands += 2
      afterwards.push(() => { synced.set(account.id, parts) })
      messages.push({ from: o.instance, kind: 'account', id: account.id })
      continue
    }
    const next: AccountParts = { ...was }
    let changed = false
    for (const part of ['meta', 'state', 'stats'] as const) {
      if (parts[part] === was[part]) continue
      multi.hset(key, part, parts[part])
      commands++
      next[part] = parts[part]
      changed = true
    }
    const served = parts.requests - was.requests
    if (served > 0) {
      // Every instance adds its own requests: a counter, never an overwrite.
      multi.hincrby(key, 'requests', served)
      commands++
      next.requests = parts.requests
      changed = true
    }
    if (parts.fp !== was.fp || parts.tokens !== was.tokens) {
      multi.eval(WRITE_TOKENS, 1, key, was.fp, parts.fp, parts.tokens)
      tokenWrites.push({ index: commands, id: account.id })
      commands++
      next.fp = parts.fp
      next.tokens = parts.tokens
      changed = true
    }
    if (changed) {
      afterwards.push(() => { synced.set(account.id, next) })
      messages.push({ from: o.instance, kind: 'account', id: account.id })
    }
  }
  for (const id of synced.keys()) {
    if (present.has(id)) continue
    multi.del(o.key('account', id))
    multi.zrem(o.key('accounts'), id)
    commands += 2
    afterwards.push(() => { synced.delete(id) })
    messages.push({ from: o.instance, kind: 'removed', id })
  }
  if (data.sticky !== syncedSticky) {
    multi.eval(MOVE_STICKY, 1, o.key('sticky'), syncedSticky ?? '', data.sticky ?? '')
    stickyIndex = commands++
    messages.push({ from: o.instance, kind: 'sticky' })
  }
  return { commands, afterwards, tokenWrites, stickyIndex, messages }
}

/**
 * Queues on `multi` the pool as this instance last synced it, for a Redis that came back without
 * it (restarted with no persistence). Every field is set only where missing, so when several
 * instances restore at once the first one's records stand whole (a MULTI runs in one piece), and
 * what this instance changed since is written afterwards by the usual `queuePoolWrite`.
 */
export function queuePoolRestore (multi: ChainableCommander, synced: Map<string, AccountParts>, syncedSticky: string | null, key: (...parts: string[]) => string): void {
  for (const [id, parts] of synced) {
    const account = key('account', id)
    for (const [field, value] of Object.entries({ meta: parts.meta, tokens: parts.tokens, fp: parts.fp, state: parts.state, stats: parts.stats, requests: String(parts.requests) })) {
      multi.hsetnx(account, field, value)
    }
    const { addedAt } = JSON.parse(parts.meta) as { addedAt: number }
    multi.zadd(key('accounts'), 'NX', addedAt, id)
  }
  if (syncedSticky !== null) multi.set(key('sticky'), syncedSticky, 'NX')
}
