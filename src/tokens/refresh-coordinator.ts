import type { Account, TokenSet } from '../store/records.js'
import type { SharedStore, StoredTokens } from '../store/port.js'
import { RefreshError } from './oauth-client.js'
import type { RefreshedTokens } from './token-answer.js'
import { rememberSpent, tokenFingerprint } from './token-lineage.js'
import { keepAliveReason } from './keep-alive.js'

const PROACTIVE_BACKOFF_START_MS = 30_000
const PROACTIVE_BACKOFF_MAX_MS = 10 * 60_000
/** Below this much remaining life a request waits for the refresh instead of using the old token. */
const MUST_REFRESH_MS = 30_000
/** While another instance refreshes, its commit is looked for this often (besides its notification). */
const WAIT_STEP_MS = 250

export type RefreshOutcome = 'ok' | 'needs_login' | 'issuer_down'

export interface TokenRefresher {
  /** Spends the refresh token (through `proxy` when the account has one); resolves only with checked tokens (see `readRefreshAnswer`). */
  refresh: (refreshToken: string, proxy?: string | null) => Promise<RefreshedTokens>
}

export interface RefreshLogger {
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

/** What the coordinator needs of the pool that owns the accounts. */
export interface RefreshHost {
  now: () => number
  /** True while `account` is still in the pool holding exactly `tokens`. */
  holds: (account: Account, tokens: TokenSet) => boolean
  applyTokens: (account: Account, tokens: TokenSet) => void
  noteError: (account: Account, message: string) => void
  /** Writes the state; false (after reporting it) when the write failed. */
  save: () => Promise<boolean>
  emit: (event: 'refresh', payload: { account: string, result: 'ok' | 'permanent_failure' | 'transient_failure' }) => void
  accounts: () => readonly Account[]
}

export interface RefreshCoordinatorOptions {
  oauth: TokenRefresher
  host: RefreshHost
  refreshMarginMs: number
  log?: RefreshLogger
  /** A store shared with other instances: refreshes then take its lease (one spend per rotation cluster-wide). */
  shared?: SharedStore
}

/**
 * The token lifecycle: one refresh at a time per account (concurrent callers share it; with a shared
 * store, one across all instances through a lease and a spending marker), proactive refreshes with
 * back-off, keep-alive refreshes of idle accounts. Refresh tokens rotate and are single use: the
 * rotated one is stored before anyone may use the new access token.
 */
export class RefreshCoordinator {
  private readonly refreshing = new Map<string, Promise<void>>()
  private readonly proactiveRetryAt = new Map<string, { at: number, backoffMs: number }>()
  /** Set when this process may no longer use the tokens (its store lock was lost): no more refreshes. */
  private retiredBecause: string | null = null

  constructor (private readonly opts: RefreshCoordinatorOptions) {}

  private get host (): RefreshHost {
    return this.opts.host
  }

  /** Stops all refreshes for good: another process may hold these refresh tokens now. */
  retire (reason: string): void {
    this.retiredBecause = reason
  }

  /** Forgets an account's back-off (a fresh sign-in, or the account is gone). */
  forget (id: string): void {
    this.proactiveRetryAt.delete(id)
  }

  /** When a failed refresh of this account may be tried again, if it failed. */
  retryAt (id: string): number | null {
    return this.proactiveRetryAt.get(id)?.at ?? null
  }

  /** The refreshes under way (a stop waits for them). */
  running (): Array<Promise<void>> {
    return [...this.refreshing.values()]
  }

  /**
   * Refreshes when the access token is close to its `exp`: in the background while it still works.
   * Returns the refresh to wait for, or null when there is none (the common case costs no promise).
   */
  ensureFresh (account: Account): Promise<RefreshOutcome> | null {
    const expiresAt = account.accessExpiresAt
    if (expiresAt === null) return null
    const now = this.host.now()
    const remaining = expiresAt - now
    if (remaining > this.opts.refreshMarginMs) return null
    const retry = this.proactiveRetryAt.get(account.id)
    if (remaining > MUST_REFRESH_MS) {
      if (retry === undefined || retry.at <= now) this.refreshTokens(account).catch(() => {}) // outcome recorded on the account; the old token still works
      return null
    }
    return this.refreshOutcome(account)
  }

  refreshOutcome (account: Account): Promise<RefreshOutcome> {
    return this.refreshTokens(account).then(() => 'ok' as const, () => account.needsLogin ? 'needs_login' as const : 'issuer_down' as const)
  }

  /**
   * Refreshes, in the background, the accounts that rest or sit unused but need it (see
   * keepAliveReason); failures back off like any proactive refresh. Returns the refreshes started.
   */
  keepAlive (): Array<Promise<void>> {
    const now = this.host.now()
    const started: Array<Promise<void>> = []
    for (const account of this.host.accounts()) {
      const reason = keepAliveReason(account, now, this.opts.refreshMarginMs)
      const retry = this.proactiveRetryAt.get(account.id)
      if (reason === null || (retry !== undefined && retry.at > now)) continue
      this.opts.log?.info({ account: account.id, reason }, 'keep-alive refresh')
      started.push(this.refreshTokens(account).catch(() => {})) // the outcome is recorded on the account
    }
    return started
  }

  /**
   * An account whose refresh was at the issuer when the process died: its answer (the only copy of
   * the next refresh token) may be lost. Said once, and shown on the account, so that a later
   * `refresh_token_reused` has its explanation.
   */
  noteInterruptedRefreshes (): void {
    for (const account of this.host.accounts()) {
      if (account.refreshingSince === undefined) continue
      this.noteInterrupted(account, account.refreshingSince)
      delete account.refreshingSince
    }
  }

  private noteInterrupted (account: Account, sinceMs: number, who = 'the service'): void {
    const since = new Date(sinceMs).toISOString()
    this.host.noteError(account, `a token refresh was under way when ${who} stopped (${since}); if its answer was lost, this account will need a new login`)
    this.opts.log?.warn({ account: account.id, since }, 'a token refresh was interrupted by the last stop; its answer may be lost')
  }

  /**
   * One refresh at a time per account (concurrent callers share it). The rotated refresh token is
   * stored before anyone can use the new access token: refresh tokens are single use, so losing the
   * new one would lose the account.
   */
  refreshTokens (account: Account): Promise<void> {
    if (this.retiredBecause !== null) return Promise.reject(new RefreshError(`no refresh: ${this.retiredBecause}`, null, null))
    const running = this.refreshing.get(account.id)
    if (running !== undefined) return running
    const shared = this.opts.shared
    const refresh = (shared === undefined ? this.refreshAlone(account) : this.refreshShared(account, shared)).finally(() => {
      this.refreshing.delete(account.id)
      delete account.refreshingSince // stored with the next write
    })
    this.refreshing.set(account.id, refresh)
    return refresh
  }

  /** The only process using these tokens (the file store's lock says so). */
  private async refreshAlone (account: Account): Promise<void> {
    const startedFrom = account.tokens
    await this.requireWritableStore(account)
    const answer = await this.spend(account, startedFrom)
    if (answer === null) return
    this.apply(account, startedFrom, answer)
    // Resolves once the rotated tokens are on disk (or the write failed and was reported: the store
    // keeps retrying, and a stop waits for it); only then may anyone use them.
    await this.host.save()
    this.succeeded(account)
  }

  /**
   * Several instances share the tokens: the account's lease makes one of them the refresher; it
   * re-reads the stored tokens (someone may have rotated them already), marks the fingerprint it
   * spends in the account record (a lease may expire mid-refresh; the marker does not), spends, and
   * commits with compare-and-set. The others wait for that commit and adopt it.
   */
  private async refreshShared (account: Account, shared: SharedStore): Promise<void> {
    const startedFrom = account.tokens
    const fingerprint = tokenFingerprint(startedFrom.refreshToken)
    // Bounded: a refresher that neither commits nor dies in this time is reported, not waited for.
    const giveUpAt = Date.now() + shared.leaseMs * 2 + 5_000
    for (;;) {
      if (!this.host.holds(account, startedFrom)) return // another instance's commit arrived by notification
      if (Date.now() > giveUpAt) throw this.transient(account, 'token refresh postponed: another instance is refreshing this account and has not finished')
      let lease
      try {
        lease = await shared.acquireLease(account.id)
      } catch {
        throw this.transient(account, 'token refresh postponed: the shared store is unreachable, and only the holder of its lease may spend a refresh token')
      }
      if (lease === null) {
        await this.waitForOther(account, shared, startedFrom, fingerprint)
        continue
      }
      try {
        const stored = await shared.readTokens(account.id)
        if (stored === null) throw this.transient(account, 'token refresh dropped: the account was removed by another instance')
        if (tokenFingerprint(stored.tokens.refreshToken) !== fingerprint) {
          this.adopt(account, startedFrom, stored) // someone else rotated: their tokens, no spend
          return
        }
        const marker = stored.spending
        if (marker !== null && marker.fingerprint === fingerprint) {
          if (marker.instance !== shared.instance && await shared.isAlive(marker.instance)) {
            // Its lease expired, but it may still be at the issuer with this token: never spend it twice.
            await lease.release().catch(() => {})
            lease = null
            await shared.waitForTokens(account.id, WAIT_STEP_MS)
            continue
          }
          this.noteInterrupted(account, marker.since, marker.instance === shared.instance ? 'this instance' : `instance ${marker.instance}`)
          await shared.clearSpending(account.id, fingerprint)
        }
        if (!await shared.markSpending(account.id, fingerprint)) continue // changed meanwhile: read again
        let answer: RefreshedTokens | null
        try {
          answer = await this.spend(account, startedFrom)
        } catch (err) {
          // Not rotated (or refused for good): the marker would only block the next try.
          await shared.clearSpending(account.id, fingerprint).catch(() => {})
          throw err
        }
        if (answer === null) {
          await shared.clearSpending(account.id, fingerprint).catch(() => {})
          return
        }
        this.apply(account, startedFrom, answer)
        let committed = true
        try {
          committed = await shared.commitTokens(account, fingerprint)
        } catch {
          // The store went away after the spend: these tokens exist only here; every later save
          // retries the compare-and-set until it lands (the marker keeps others from spending).
          this.opts.log?.error({ account: account.id }, 'rotated tokens could not be stored yet; retrying until the shared store is back')
          await this.host.save()
        }
        if (!committed) {
          this.opts.log?.warn({ account: account.id }, 'refresh answer set aside: the account was signed in again meanwhile')
          const now = await shared.readTokens(account.id).catch(() => null)
          if (now !== null) this.adopt(account, account.tokens, now)
          return
        }
        this.succeeded(account)
        return
      } finally {
        if (lease !== null) await lease.release().catch(() => {})
      }
    }
  }

  /** Another instance holds the lease: wait a little for its commit, and take it when it came. */
  private async waitForOther (account: Account, shared: SharedStore, startedFrom: TokenSet, fingerprint: string): Promise<void> {
    await shared.waitForTokens(account.id, WAIT_STEP_MS)
    if (!this.host.holds(account, startedFrom)) return
    const stored = await shared.readTokens(account.id).catch(() => null)
    if (stored !== null && tokenFingerprint(stored.tokens.refreshToken) !== fingerprint) this.adopt(account, startedFrom, stored)
  }

  /** Takes tokens another instance stored: no spend. */
  private adopt (account: Account, startedFrom: TokenSet, stored: StoredTokens): void {
    if (!this.host.holds(account, startedFrom)) return
    this.host.applyTokens(account, stored.tokens)
    account.lastRefreshAt = stored.lastRefreshAt
    account.spentRefreshTokens = stored.spentRefreshTokens
    this.proactiveRetryAt.delete(account.id)
    this.opts.log?.info({ account: account.id }, 'tokens refreshed by another instance adopted')
  }

  /** Spends the refresh token; null when the account changed meanwhile (the answer is set aside). Failures are recorded and thrown. */
  private async spend (account: Account, startedFrom: TokenSet): Promise<RefreshedTokens | null> {
    let answer: RefreshedTokens
    try {
      answer = await this.opts.oauth.refresh(startedFrom.refreshToken, account.proxy)
    } catch (err) {
      // A new sign-in landed meanwhile: this failure concerns tokens the account no longer holds.
      if (!this.host.holds(account, startedFrom)) throw err
      const permanent = err instanceof RefreshError && err.permanent
      if (permanent) {
        account.needsLogin = true
        account.disabledReason = `${(err as RefreshError).code ?? 'refresh refused'}: sign in to this account again`
        account.disabledSource = 'refresh'
        this.host.noteError(account, account.disabledReason)
        this.opts.log?.error({ account: account.id, code: (err as RefreshError).code }, 'refresh token refused for good: the account needs a new login')
        await this.host.save()
      } else {
        this.backOff(account)
        this.host.noteError(account, `token refresh failed: ${(err as Error).message}`)
        this.opts.log?.warn({ account: account.id, retryInMs: this.proactiveRetryAt.get(account.id)?.backoffMs, err: (err as Error).message }, 'token refresh failed; will retry')
      }
      this.host.emit('refresh', { account: account.id, result: permanent ? 'permanent_failure' : 'transient_failure' })
      throw err
    }
    if (!this.host.holds(account, startedFrom)) {
      // Compare-and-set: a sign-in imported meanwhile is newer than this refresh's starting point.
      this.opts.log?.info({ account: account.id }, 'refresh answer set aside: the account was signed in again meanwhile')
      return null
    }
    return answer
  }

  private apply (account: Account, startedFrom: TokenSet, answer: RefreshedTokens): void {
    account.spentRefreshTokens = rememberSpent(account.spentRefreshTokens, startedFrom.refreshToken)
    delete account.refreshingSince
    this.host.applyTokens(account, {
      idToken: answer.idToken ?? startedFrom.idToken,
      accessToken: answer.accessToken,
      refreshToken: answer.refreshToken ?? startedFrom.refreshToken
    })
    account.lastRefreshAt = this.host.now()
    this.proactiveRetryAt.delete(account.id)
  }

  private succeeded (account: Account): void {
    this.host.emit('refresh', { account: account.id, result: 'ok' })
    this.opts.log?.info({ account: account.id }, 'tokens refreshed')
  }

  private backOff (account: Account): void {
    const previous = this.proactiveRetryAt.get(account.id)
    const backoffMs = Math.min(previous === undefined ? PROACTIVE_BACKOFF_START_MS : previous.backoffMs * 2, PROACTIVE_BACKOFF_MAX_MS)
    this.proactiveRetryAt.set(account.id, { at: this.host.now() + backoffMs, backoffMs })
  }

  /** A refresh not attempted (nothing was spent): reported like a transient failure. */
  private transient (account: Account, message: string): RefreshError {
    this.backOff(account)
    this.host.noteError(account, message)
    this.opts.log?.warn({ account: account.id }, message)
    this.host.emit('refresh', { account: account.id, result: 'transient_failure' })
    return new RefreshError(message, null, null)
  }

  /**
   * A refresh spends the refresh token: its answer must be saveable. The state is written first;
   * if that fails (disk full, read-only) the refresh is not attempted and the old token stays valid.
   */
  private async requireWritableStore (account: Account): Promise<void> {
    account.refreshingSince = this.host.now() // recorded with this write: a crash mid-refresh is known at the next start
    if (await this.host.save()) return
    delete account.refreshingSince
    const message = 'token refresh postponed: the token file cannot be written, and a rotated refresh token must be saved before it is used'
    this.host.noteError(account, message)
    this.host.emit('refresh', { account: account.id, result: 'transient_failure' })
    throw new RefreshError(message, null, null)
  }
}
