import type { Redis } from 'ioredis'
import type { KeyStore, MemoryEntry, PoolStore, RefreshLease, SharedChange, SharedStore, StoreData, StoredTokens } from './port.js'
import type { Account } from './records.js'
import { connectRedis, type RedisTarget } from './redis-connect.js'
import { InstanceHeartbeat } from './redis-heartbeat.js'
import { CLIENT_KEYS, RedisKeys } from './redis-keys.js'
import { parseMessage, type Message } from './redis-messages.js'
import { parseRaw, readPool } from './redis-pool-read.js'
import { queuePoolRestore, queuePoolWrite } from './redis-pool-write.js'
import { partsOf, type AccountParts } from './redis-records.js'
import { RefreshLeases } from './redis-refresh-leases.js'
import { WRITE_TOKENS } from './redis-scripts.js'
import { RedisUsageLedger } from './redis-usage-ledger.js'
import { checkStoreData } from './store-check.js'
import { StoreError } from './store-error.js'
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

const RETRY_MS = 1_000
/** What an instance learned of conversations is sent this often, in one message. */
const MEMORY_BATCH_MS = 200

/**
 * The store shared by several instances. Each instance keeps the whole pool in memory (the pool's
 * hot path makes no round trip); a save writes only what changed since this instance last synced,
 * part by part (redis-pool-write.ts, redis-records.ts), and publishes what it changed on
 * `<prefix>events` (redis-messages.ts); the others re-read that record and mirror it. Refresh leases
 * and spending markers: redis-refresh-leases.ts; the instance's name: redis-heartbeat.ts. Writes that failed (Redis away) stay pending and are
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
  private readonly leases: RefreshLeases
  private closed = false
  private wasDown = false
  private memoryOut: MemoryEntry[] = []
  private memoryTimer: NodeJS.Timeout | null = null
  private readonly memoryListeners: Array<(entries: MemoryEntry[]) => void> = []
  private readonly ledgers: RedisUsageLedger[] = []

  private constructor (private readonly redis: Redis, private readonly subscriber: Redis, private readonly opts: RedisStoreOptions) {
    this.leaseMs = opts.leaseMs ?? 60_000
    this.leases = new RefreshLeases(redis, { instance: opts.instance, leaseMs: this.leaseMs, key: (...parts) => this.key(...parts), publish: (message) => { this.publish(message) } })
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
    const data = await readPool(this.redis, (...parts) => this.key(...parts), this.opts.prefix)
    this.syncedSticky = data.sticky
    this.synced.clear()
    for (const account of data.accounts) this.synced.set(account.id, partsOf(account))
    return data
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
    const { commands, afterwards, tokenWrites, stickyIndex, messages } = queuePoolWrite(multi, data, this.synced, this.syncedSticky, { instance: this.instance, key: (...parts: string[]) => this.key(...parts) })
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
    try {
      await this.enqueue(async () => {
        // Empty while we know of accounts: Redis lost its data (an instance deleting every account
        // while we were away is told apart by nothing, and losing the pool is the worse mistake).
        if (this.synced.size === 0 || await this.redis.zcard(this.key('accounts')) !== 0) return
        this.opts.log?.warn({}, 'Redis came back without the pool: writing the accounts and client keys again from memory')
        const multi = this.redis.multi()
        queuePoolRestore(multi, this.synced, this.syncedSticky, (...parts) => this.key(...parts))
        this.clientKeys.queueRestore(multi)
        await multi.exec()
      })
    } catch (err) {
      // Not knowing whether Redis lost the pool, reading it now could take every account for deleted.
      this.opts.log?.warn({ err: (err as Error).message }, 'could not check the pool in Redis after a reconnection')
      setTimeout(() => { if (!this.closed) void this.reconnected() }, RETRY_MS).unref()
      return
    }
    if (this.live !== null && this.dirty) await this.save(this.live).catch(() => {})
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
    const message = parseMessage(text)
    if (message === null || message.from === this.instance) return
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
        this.leases.heard(message.id, message.holder)
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
    return this.leases.holder(accountId)
  }

  async acquireLease (accountId: string): Promise<RefreshLease | null> {
    return await this.leases.acquire(accountId)
  }

  publish (message: Message): void {
    this.redis.publish(this.channel, JSON.stringify(message)).catch(() => {})
  }

  async readTokens (accountId: string): Promise<StoredTokens | null> {
    return await this.leases.readTokens(accountId)
  }

  async markSpending (accountId: string, fingerprint: string): Promise<boolean> {
    return await this.leases.markSpending(accountId, fingerprint)
  }

  async clearSpending (accountId: string, fingerprint: string): Promise<void> {
    await this.leases.clearSpending(accountId, fingerprint)
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
    return await this.leases.isAlive(instance)
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
