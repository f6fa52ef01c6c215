import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { RELEASE_LEASE, RENEW_HEARTBEAT } from './redis-scripts.js'
import { StoreError } from './store-error.js'

export interface HeartbeatOptions {
  /** The heartbeat's key (`<prefix>instance:<name>`). */
  key: string
  instance: string
  /** Renewed this often; the key dies after three misses. */
  everyMs: number
  log?: { info: (obj: object, msg?: string) => void, error: (obj: object, msg?: string) => void }
}

/**
 * An instance's heartbeat in Redis: its name, held with a random boot id. Leases and spending markers
 * are held by name, so two live instances with one name would break the one-spend rule: a start
 * that finds the name held by a live heartbeat (one that is renewed) is refused. A heartbeat that
 * is not renewed (its instance was killed, and is being restarted under the same name) is waited
 * out: at most three heartbeats (6 s by default).
 */
export class InstanceHeartbeat {
  private readonly bootId = randomUUID()
  private timer: NodeJS.Timeout | null = null
  private lostSaid = false

  constructor (private readonly redis: Redis, private readonly o: HeartbeatOptions) {}

  get ttlMs (): number {
    return this.o.everyMs * 3
  }

  /** Takes the name (waiting out a dead holder's heartbeat), then renews it until `release`. */
  async start (): Promise<void> {
    await this.claim()
    this.timer = setInterval(() => { this.beat().catch(() => {}) }, this.o.everyMs)
    this.timer.unref()
  }

  private async claim (): Promise<void> {
    if (await this.renew()) return
    let lastTtl = await this.redis.pttl(this.o.key)
    const deadline = Date.now() + Math.max(lastTtl, 0) + 500
    this.o.log?.info({ instance: this.o.instance, waitMs: Math.max(lastTtl, 0) }, `the instance name ${this.o.instance} is held by a heartbeat in Redis: waiting for it to expire (an instance of that name that stopped without saying goodbye), or to be renewed (one that is running)`)
    const pollMs = Math.max(10, Math.min(250, Math.floor(this.o.everyMs / 4)))
    for (;;) {
      await sleep(pollMs)
      if (await this.renew()) return
      const ttl = await this.redis.pttl(this.o.key)
      // Renewed: its instance is alive. Still held once it should have expired: the same.
      if (ttl > lastTtl + pollMs || Date.now() > deadline) {
        throw new StoreError(`another instance named "${this.o.instance}" is running on this pool (its heartbeat in Redis is renewed): give every instance its own --instance-name (CODEX_EQ_INSTANCE_NAME); leases and refresh markers are held by name`)
      }
      lastTtl = ttl
    }
  }

  /** Sets the heartbeat if it is ours or gone; false when another boot holds the name. */
  private async renew (): Promise<boolean> {
    return await this.redis.eval(RENEW_HEARTBEAT, 1, this.o.key, this.bootId, String(this.ttlMs)) === 1
  }

  /** Renews it now (also at once after a reconnection, before anyone can take this instance for dead). */
  async beat (): Promise<void> {
    if (await this.renew()) {
      this.lostSaid = false
      return
    }
    if (this.lostSaid) return
    this.lostSaid = true
    this.o.log?.error({ instance: this.o.instance }, `another instance took the name ${this.o.instance} while this one could not renew its heartbeat: give every instance its own --instance-name`)
  }

  stopRenewing (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  /** Removes the heartbeat, if it is still ours: the name is free for the next start at once. */
  async release (): Promise<void> {
    this.stopRenewing()
    await this.redis.eval(RELEASE_LEASE, 1, this.o.key, this.bootId).catch(() => {})
  }
}
