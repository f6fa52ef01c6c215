import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { RefreshLease, StoredTokens } from './port.js'
import type { Message } from './redis-messages.js'
import { storedTokens } from './redis-records.js'
import { CLEAR_SPENDING, MARK_SPENDING, RELEASE_LEASE } from './redis-scripts.js'

export interface RefreshLeasesOptions {
  instance: string
  leaseMs: number
  /** The full key of `parts` under the pool's prefix. */
  key: (...parts: string[]) => string
  publish: (message: Message) => void
}

/**
 * What keeps a refresh token from being spent twice across instances: the account's refresh lease
 * (who may refresh now), the spending marker in the account's hash (which token is at the issuer,
 * and for whom), and the instances' heartbeats (whether a marker's owner is still alive). Who holds
 * which lease is announced, so `holder` needs no round trip.
 */
export class RefreshLeases {
  private readonly holders = new Map<string, string>()

  constructor (private readonly redis: Redis, private readonly o: RefreshLeasesOptions) {}

  holder (accountId: string): string | null {
    return this.holders.get(accountId) ?? null
  }

  /** Another instance took or released a lease. */
  heard (accountId: string, holder: string | null): void {
    if (holder === null) this.holders.delete(accountId)
    else this.holders.set(accountId, holder)
  }

  async acquire (accountId: string): Promise<RefreshLease | null> {
    const { instance, leaseMs } = this.o
    const key = this.o.key('lease', accountId)
    const token = `${instance}:${randomUUID()}`
    let taken = await this.redis.set(key, token, 'PX', leaseMs, 'NX')
    if (taken !== 'OK') {
      // A lease whose holder died (its heartbeat expired) is not waited out: its spending marker,
      // not the lease, is what keeps a token from being spent twice.
      const held = await this.redis.get(key)
      const holder = held?.slice(0, held.lastIndexOf(':'))
      if (held === null || holder === undefined || await this.isAlive(holder)) return null
      await this.redis.eval(RELEASE_LEASE, 1, key, held)
      taken = await this.redis.set(key, token, 'PX', leaseMs, 'NX')
      if (taken !== 'OK') return null
    }
    this.holders.set(accountId, instance)
    this.o.publish({ from: instance, kind: 'lease', id: accountId, holder: instance })
    return {
      token,
      release: async () => {
        if (this.holders.get(accountId) === instance) this.holders.delete(accountId)
        const released = await this.redis.eval(RELEASE_LEASE, 1, key, token)
        if (released === 1) this.o.publish({ from: instance, kind: 'lease', id: accountId, holder: null })
      }
    }
  }

  async readTokens (accountId: string): Promise<StoredTokens | null> {
    const [tokens, spending] = await this.redis.hmget(this.o.key('account', accountId), 'tokens', 'spending')
    return tokens === null || tokens === undefined ? null : storedTokens(tokens, spending ?? null)
  }

  async markSpending (accountId: string, fingerprint: string): Promise<boolean> {
    const marker = JSON.stringify({ fingerprint, instance: this.o.instance, since: Date.now() })
    return await this.redis.eval(MARK_SPENDING, 1, this.o.key('account', accountId), fingerprint, marker) === 1
  }

  async clearSpending (accountId: string, fingerprint: string): Promise<void> {
    await this.redis.eval(CLEAR_SPENDING, 1, this.o.key('account', accountId), fingerprint)
  }

  async isAlive (instance: string): Promise<boolean> {
    return await this.redis.exists(this.o.key('instance', instance)) === 1
  }
}
