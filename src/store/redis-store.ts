import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Account } from './records.js'
import { emptyStore, type KeyStore, type MemoryEntry, type PoolStore, type RefreshLease, type SharedChange, type SharedStore, type StoreData, type StoredTokens } from './port.js'
import { connectRedis, type RedisTarget } from './redis-connect.js'
import { partsOf, rawAccount, storedTokens, type AccountParts } from './redis-records.js'
import { CLEAR_SPENDING, MARK_SPENDING, MOVE_STICKY, RELEASE_LEASE, WRITE_TOKENS } from './redis-scripts.js'
import { checkStoreData } from './store-check.js'
import { StoreError } from './store-error.js'
import { CLIENT_KEYS, RedisKeys } from './redis-keys.js'
import { InstanceHeartbeat } from './redis-heartbeat.js'
import { RedisUsageLedger, type UsageDelta } from './redis-usage-ledger.js'
import type { UsageLedger } from './usage-ledger.js'

export interface RedisStoreOptions extends RedisTarget {
  prefix: string
  instance: string
  /** How long a refresh lease lives (default 60 s): longer than the issuer's timeout. */
  leaseMs?: number
  /** The instance's heartbeat is renewed this often and dies after three misses (default 2 s). */
  heartbeatMs?: number
  /** How long `close` keeps trying to write changes Redis did not take (default 10 s). */
  stopWaitMs?: number
  log?: { warn: (obj: object, msg?: string) => void, error: (obj: object, msg?: string) => void, info: (obj: object, msg?: string) => void }
}

/** What an instance tells the others: only what changed; the receivers read it themselves. */
type Message =
  | { from: string, kind: 'account' | 'removed', id: string }
  | { from: string, kind: 'sticky' }
  | { from: string, kind: 'lease', id: string, holder: string | null }
  | { from: string, kind: 'memory', entries: MemoryEntry[] }
  | { from: string, kind: 'keys' }
  | { from: string, kind: 'usage', delta: UsageDelta }

const RETRY_MS = 1_000
/** What an instance learned of conversations is sent this often, in one message. */
const MEMORY_BATCH_MS = 200

/**
 * The store shared by several instances. Each instance keeps the whole pool in memory (the pool's
 * hot path makes no round trip); a save writes only what changed since this instance last synced,
 * part by part (see redis-records.ts), and publishes what it changed on `<prefix>events`; the
 * others re-read that record and mirror it. Writes that failed (Redis away) stay pending and are
 * written again when the connection is back.
 */
export class RedisStore implements PoolStore, SharedStore {
  readonly shared: SharedStore = this
  readonly leaseMs: number
  readonly clientKeys: KeyStore & RedisKeys
  private readonly heartbeat: InstanceHeartbeat
  private readonly synced = new Map<string, AccountParts>()
  private syncedSticky: string | null = null
  private live: StoreData | null = null
  private queue: Promise<void> = Promise.resolve()
  private writeQueued: Promise<void> | null = null
  private dirty = false
  private retryTimer: NodeJS.Timeout | null = null
  private readonly listeners: Array<(change: SharedChange) => void> = []
  private readonly waiters = new Map<string, Set<() => void>>()
  private readonly holders = new Map<string, string>()
  private closed = false
  private wasDown = false
  private memoryOut: MemoryEntry[] = []
  private memoryTimer: NodeJS.Timeout | null = null
  private readonly memoryListeners: Array<(entries: MemoryEntry[]) => void> = []
  private readonly ledgers: RedisUsageLedger[] = []

  private constructor (private readonly redis: Redis, private readonly subscriber: Redis, private readonly opts: RedisStoreOptions) {
    this.leaseMs = opts.leaseMs ?? 60_000
    this.heartbeat = new InstanceHeartbeat(redis, { key: this.key('instance', opts.instance), instance: opts.instance, everyMs: opts.heartbeatMs ?? 2_000, log: opts.log })
    this.clientKeys = new RedisKeys(redis, this.key(CLIENT_KEYS), () => { this.publish({ from: this.instance, kind: 'keys' }) })
  }

  get instance (): string {
    return this.opts.instance
  }

  /** Connects (a StoreError in one line when Redis cannot be used), subscribes and starts the heartbeat. */
  static async open (opts: RedisStoreOptions): Promise<RedisStore> {
    const redis = await connectRedis(opts, `codex-eq:${opts.instance}`)
    let subscriber: Redis
    try {
      subscriber = await connectRedis(opts, `codex-eq:${opts.instance}:events`)
    } catch (err) {
      redis.disconnect()
      throw err
    }
    const store = new RedisStore(redis, subscriber, opts)
    try {
      await store.start()
    } catch (err) {
      subscriber.disconnect()
      redis.disconnect()
      throw err
    }
    return store
  }

  private key (...parts: string[]): string {
    return this.opts.prefix + parts.join(':')
  }

  private get channel (): string {
    return this.key('events')
  }

  private async start (): Promise<void> {
    // The name first: an instance refused for a name in use must not have touched anything.
    await this.heartbeat.start()
    this.subscriber.on('message', (_channel: string, text: string) => { this.received(text) })
    await this.subscriber.subscribe(this.channel)
    // ioredis subscribes again by itself after a reconnect.
    this.redis.on('close', () => { this.wasDown = true })
    this.redis.on('error', (err: Error) => { if (!this.closed) this.opts.log?.warn({ err: err.message }, 'Redis connection trouble; serving from memory, writes wait') })
    this.subscriber.on('error', () => {})
    this.redis.on('ready', () => { if (this.wasDown) void this.reconnected() })
  }

  // ---- the port: load, save, flush ----

  async load (): Promise<StoreData> {
    const data = await this.readAll()
    this.syncedSticky = data.sticky
    this.synced.clear()
    for (const account of data.accounts) this.synced.set(account.id, partsOf(account))
    return data
  }

  private async readAll (): Promise<StoreData> {
    let ids: string[]
    let sticky: string | null
    try {
      ids = await this.redis.zrange(this.key('accounts'), 0, -1)
      sticky = await this.redis.get(this.key('sticky'))
    } catch (err) {
      throw new StoreError(`cannot read the pool from Redis: ${(err as Error).message}`)
    }
    const pipeline = this.redis.pipeline()
    for (const id of ids) pipeline.hgetall(this.key('account', id))
    const hashes = ids.length === 0 ? [] : (await pipeline.exec()) ?? []
    const raws: Array<Record<string, unknown>> = []
    hashes.forEach(([err, hash], index) => {
      if (err !== null) throw new StoreError(`cannot read account ${ids[index]} from Redis: ${err.message}`)
      const raw = parseRaw(hash as Record<string, string>, ids[index]!)
      if (raw !== null) raws.push(raw)
    })
    const checked = checkStoreData({ version: 1, sticky, accounts: raws })
    if (typeof checked === 'string') throw new StoreError(`the pool in Redis (prefix ${this.opts.prefix}) is not valid: ${checked}`)
    if (checked.sticky !== null && !ids.includes(checked.sticky)) checked.sticky = null
    return checked.accounts.length === 0 && sticky === null ? emptyStore() : checked
  }

  /** Resolves once this state's changes (or a newer state's) are in Redis; rejects when Redis did not take them. */
  save (data: StoreData): Promise<void> {
    this.live = data
    this.dirty = true
    this.writeQueued ??= this.enqueue(async () => {
      this.writeQueued = null
      await this.writeChanges()
    })
    return this.writeQueued
  }

  async flush (): Promise<void> {
    await this.queue.catch(() => {})
  }

  /** One step at a time: writes and mirror reads never interleave (a mirror read is then never older than our write). */
  private enqueue (step: () => Promise<void>): Promise<void> {
    const run = this.queue.catch(() => {}).then(step)
    this.queue = run.catch(() => {})
    return run
  }

  private async writeChanges (): Promise<void> {
    const data = this.live
    if (data === null || !this.dirty) return
    this.dirty = false
    const multi = this.redis.multi()
    const afterwards: Array<() => void> = []
    const tokenWrites: Array<{ index: number, id: string }> = []
    const messages: Message[] = []
    let stickyIndex = -1
    let commands = 0
    const present = new Set<string>()
    for (const account of data.accounts) {
      present.add(account.id)
      const parts = partsOf(account)
      const was = this.synced.get(account.id)
      const key = this.key('account', account.id)
      if (was === undefined) {
        multi.hset(key, { meta: parts.meta, tokens: parts.tokens, fp: parts.fp, state: parts.state, stats: parts.stats, requests: String(parts.requests) })
        multi.zadd(this.key('accounts'), account.addedAt, account.id)
        commands += 2
        afterwards.push(() => { this.synced.set(account.id, parts) })
        messages.push({ from: this.instance, kind: 'account', id: account.id })
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
        afterwards.push(() => { this.synced.set(account.id, next) })
        messages.push({ from: this.instance, kind: 'account', id: account.id })
      }
    }
    for (const id of this.synced.keys()) {
      if (present.has(id)) continue
      multi.del(this.key('account', id))
      multi.zrem(this.key('accounts'), id)
      commands += 2
      afterwards.push(() => { this.synced.delete(id) })
      messages.push({ from: this.instance, kind: 'removed', id })
    }
    if (data.sticky !== this.syncedSticky) {
      multi.eval(MOVE_STICKY, 1, this.key('sticky'), this.syncedSticky ?? '', data.sticky ?? '')
      stickyIndex = commands++
      messages.push({ from: this.instance, kind: 'sticky' })
    }
    if (commands === 0) return
    for (const message of messages) multi.publish(this.channel, JSON.stringify(message))
    let results: Array<[Error | null, unknown]>
    try {
      results = (await multi.exec()) ?? []
    } catch (err) {
      this.dirty = true
      this.retryLater()
      throw new StoreError(`could not write to Redis: ${(err as Error).message}`)
    }
    for (const apply of afterwards) apply()
    if (stickyIndex >= 0) {
      if (results[stickyIndex]?.[1] === 1) {
        this.syncedSticky = data.sticky
      } else {
        // Another instance moved it first: take its choice rather than move it back (no flapping).
        const current = await this.redis.get(this.key('sticky'))
        this.syncedSticky = current
        this.tell({ kind: 'sticky', id: current })
      }
    }
    for (const write of tokenWrites) {
      if (results[write.index]?.[1] === 1) continue
      // Someone else stored other tokens meanwhile (a rotation, a sign-in): theirs win, ours are set aside.
      await this.mirror(write.id)
    }
  }

  private retryLater (): void {
    if (this.retryTimer !== null || this.closed) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      if (this.dirty && this.live !== null) this.save(this.live).catch(() => {})
    }, RETRY_MS)
    this.retryTimer.unref()
  }

  /**
   * Back after a disconnection: notifications may have been missed, and a Redis restarted without
   * its data must get the pool back. Our pending writes first, then every record is read again.
   */
  private async reconnected (): Promise<void> {
    this.wasDown = false
    // At once: a Redis that lost our heartbeat would otherwise let another instance think us dead
    // and clear a spending marker of ours.
    await this.heartbeat.beat().catch(() => {})
    await this.enqueue(async () => {
      const empty = await this.redis.zcard(this.key('accounts')).catch(() => -1)
      if (empty === 0 && this.live !== null && this.live.accounts.length > 0) {
        this.opts.log?.warn({}, 'Redis came back without the pool: writing it again from memory')
        this.synced.clear()
        this.syncedSticky = null
        this.dirty = true
      }
    })
    if (this.live !== null) await this.save(this.live).catch(() => {})
    await this.enqueue(async () => {
      const ids = await this.redis.zrange(this.key('accounts'), 0, -1)
      for (const id of ids) await this.mirrorNow(id)
      for (const id of [...this.synced.keys()]) {
        if (!ids.includes(id)) {
          this.synced.delete(id)
          this.tell({ kind: 'removed', id })
        }
      }
      const sticky = await this.redis.get(this.key('sticky'))
      if (sticky !== this.syncedSticky) {
        this.syncedSticky = sticky
        this.tell({ kind: 'sticky', id: sticky })
      }
    }).catch((err: Error) => { this.opts.log?.warn({ err: err.message }, 'could not read the pool again after a reconnection') })
  }

  // ---- notifications and the mirror ----

  onChange (listener: (change: SharedChange) => void): void {
    this.listeners.push(listener)
  }

  private tell (change: SharedChange): void {
    for (const listener of this.listeners) listener(change)
    if (change.kind !== 'sticky') this.wake(change.kind === 'account' ? change.account.id : change.id)
  }

  private wake (id: string): void {
    const waiting = this.waiters.get(id)
    if (waiting === undefined) return
    this.waiters.delete(id)
    for (const resolve of waiting) resolve()
  }

  private received (text: string): void {
    let message: Message
    try {
      message = JSON.parse(text) as Message
    } catch {
      return
    }
    if (message.from === this.instance) return
    switch (message.kind) {
      case 'account':
        this.enqueue(async () => { await this.mirrorNow(message.id) }).catch((err: Error) => { this.opts.log?.warn({ account: message.id, err: err.message }, 'could not read a changed account from Redis') })
        break
      case 'removed':
        this.enqueue(async () => {
          if (!this.synced.delete(message.id)) return
          this.tell({ kind: 'removed', id: message.id })
        }).catch(() => {})
        break
      case 'sticky':
        this.enqueue(async () => {
          const sticky = await this.redis.get(this.key('sticky'))
          if (sticky === this.syncedSticky) return
          this.syncedSticky = sticky
          this.tell({ kind: 'sticky', id: sticky })
        }).catch(() => {})
        break
      case 'usage':
        for (const ledger of this.ledgers) ledger.apply(message.delta)
        break
      case 'keys':
        this.clientKeys.changedElsewhere().catch((err: Error) => { this.opts.log?.warn({ err: err.message }, 'could not read the client keys changed by another instance') })
        break
      case 'memory':
        for (const listener of this.memoryListeners) listener(message.entries)
        break
      case 'lease':
        if (message.holder === null) this.holders.delete(message.id)
        else this.holders.set(message.id, message.holder)
        break
    }
  }

  private async mirror (id: string): Promise<void> {
    await this.mirrorNow(id).catch(() => {})
  }

  /** Reads one account and hands it to the pool, with the requests other instances served since we last synced. */
  private async mirrorNow (id: string): Promise<void> {
    const hash = await this.redis.hgetall(this.key('account', id))
    const raw = parseRaw(hash, id)
    if (raw === null) {
      if (this.synced.delete(id)) this.tell({ kind: 'removed', id })
      return
    }
    const checked = checkStoreData({ version: 1, sticky: null, accounts: [raw] })
    if (typeof checked === 'string') {
      this.opts.log?.error({ account: id }, `an account changed in Redis is not valid and was not taken: ${checked}`)
      return
    }
    const account = checked.accounts[0]!
    const was = this.synced.get(id)
    this.synced.set(id, partsOf(account))
    this.tell({ kind: 'account', account, othersServed: was === undefined ? 0 : Math.max(0, account.requests - was.requests) })
  }

  shareMemory (entry: MemoryEntry): void {
    this.memoryOut.push(entry)
    if (this.memoryTimer !== null || this.closed) return
    this.memoryTimer = setTimeout(() => {
      this.memoryTimer = null
      const entries = this.memoryOut
      this.memoryOut = []
      // Lost while Redis is away: the memory is a hint; a wrong guess costs one retry without the blobs.
      this.publish({ from: this.instance, kind: 'memory', entries })
    }, MEMORY_BATCH_MS)
    this.memoryTimer.unref()
  }

  usageLedger (o: { retentionMs: number, now: () => number, onWriteError?: (err: Error) => void }): UsageLedger {
    const ledger = new RedisUsageLedger(this.redis, {
      ...o,
      prefix: this.opts.prefix,
      announce: (delta) => { this.publish({ from: this.instance, kind: 'usage', delta }) }
    })
    this.ledgers.push(ledger)
    return ledger
  }

  onMemory (listener: (entries: MemoryEntry[]) => void): void {
    this.memoryListeners.push(listener)
  }

  // ---- the shared part: leases, markers, compare-and-set commits ----

  leaseHolder (accountId: string): string | null {
    return this.holders.get(accountId) ?? null
  }

  async acquireLease (accountId: string): Promise<RefreshLease | null> {
    const key = this.key('lease', accountId)
    const token = `${this.instance}:${randomUUID()}`
    let taken = await this.redis.set(key, token, 'PX', this.leaseMs, 'NX')
    if (taken !== 'OK') {
      // A lease whose holder died (its heartbeat expired) is not waited out: its spending marker,
      // not the lease, is what keeps a token from being spent twice.
      const held = await this.redis.get(key)
      const holder = held?.slice(0, held.lastIndexOf(':'))
      if (held === null || holder === undefined || await this.isAlive(holder)) return null
      await this.redis.eval(RELEASE_LEASE, 1, key, held)
      taken = await this.redis.set(key, token, 'PX', this.leaseMs, 'NX')
      if (taken !== 'OK') return null
    }
    this.holders.set(accountId, this.instance)
    this.publish({ from: this.instance, kind: 'lease', id: accountId, holder: this.instance })
    return {
      token,
      release: async () => {
        if (this.holders.get(accountId) === this.instance) this.holders.delete(accountId)
        const released = await this.redis.eval(RELEASE_LEASE, 1, key, token)
        if (released === 1) this.publish({ from: this.instance, kind: 'lease', id: accountId, holder: null })
      }
    }
  }

  publish (message: Message): void {
    this.redis.publish(this.channel, JSON.stringify(message)).catch(() => {})
  }

  async readTokens (accountId: string): Promise<StoredTokens | null> {
    const [tokens, spending] = await this.redis.hmget(this.key('account', accountId), 'tokens', 'spending')
    return tokens === null || tokens === undefined ? null : storedTokens(tokens, spending ?? null)
  }

  async markSpending (accountId: string, fingerprint: string): Promise<boolean> {
    const marker = JSON.stringify({ fingerprint, instance: this.instance, since: Date.now() })
    return await this.redis.eval(MARK_SPENDING, 1, this.key('account', accountId), fingerprint, marker) === 1
  }

  async clearSpending (accountId: string, fingerprint: string): Promise<void> {
    await this.redis.eval(CLEAR_SPENDING, 1, this.key('account', accountId), fingerprint)
  }

  async commitTokens (account: Account, spentFingerprint: string): Promise<boolean> {
    const parts = partsOf(account)
    const written = await this.enqueueResult(async () => {
      const done = await this.redis.eval(WRITE_TOKENS, 1, this.key('account', account.id), spentFingerprint, parts.fp, parts.tokens) === 1
      if (done) {
        const was = this.synced.get(account.id)
        if (was !== undefined) this.synced.set(account.id, { ...was, fp: parts.fp, tokens: parts.tokens })
        this.publish({ from: this.instance, kind: 'account', id: account.id })
      }
      return done
    })
    return written
  }

  private enqueueResult<T> (step: () => Promise<T>): Promise<T> {
    let result: T
    return this.enqueue(async () => { result = await step() }).then(() => result)
  }

  async isAlive (instance: string): Promise<boolean> {
    return await this.redis.exists(this.key('instance', instance)) === 1
  }

  waitForTokens (accountId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.waiters.get(accountId)?.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      let waiting = this.waiters.get(accountId)
      if (waiting === undefined) this.waiters.set(accountId, waiting = new Set())
      waiting.add(done)
    })
  }

  /** Writes what is pending (retrying for a while if Redis is away), says goodbye and disconnects. */
  async close (): Promise<void> {
    this.heartbeat.stopRenewing()
    if (this.memoryTimer !== null) clearTimeout(this.memoryTimer)
    // Whatever closes first, the usage counts still pending are written while the connection is up.
    for (const ledger of this.ledgers) await ledger.close().catch(() => {})
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    const deadline = Date.now() + (this.opts.stopWaitMs ?? 10_000)
    let failure: Error | null = null
    for (;;) {
      await this.flush()
      if (!this.dirty || this.live === null) break
      try {
        await this.save(this.live)
        failure = null
      } catch (err) {
        failure = err as Error
        if (Date.now() >= deadline) break
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    }
    this.closed = true
    await this.heartbeat.release()
    this.subscriber.disconnect()
    this.redis.disconnect()
    if (failure !== null && this.dirty) throw new StoreError(`the newest state could not be written to Redis before stopping (${failure.message}); refresh tokens rotated since may be lost`)
  }
}

function parseRaw (hash: Record<string, string>, id: string): Record<string, unknown> | null {
  try {
    return rawAccount(hash)
  } catch {
    throw new StoreError(`account ${id} in Redis is not valid JSON`)
  }
}
