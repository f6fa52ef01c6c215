import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { isUsable, newAccount, type Account, type TokenSet } from './account.js'
import { classifyAnswer, classifyError, classifyStreamFailure, type UpstreamAnswer, type Verdict } from './failover-policy.js'
import { decodeJwtPayload, expiresAtMs, readIdentity } from './jwt.js'
import { RefreshError } from './oauth-client.js'
import { readQuotaHeaders } from './quota.js'
import type { RefreshedTokens } from './token-answer.js'
import { compareImport, rememberSpent, tokenFingerprint } from './token-lineage.js'
import { keepAliveReason } from './keep-alive.js'
import type { StoreData } from './token-store.js'

export interface Clock {
  now: () => number
}

export interface PoolStore {
  load: () => Promise<StoreData>
  save: (data: StoreData) => Promise<void>
  flush: () => Promise<void>
}

export interface TokenRefresher {
  /** Spends the refresh token; resolves only with checked tokens (see `readRefreshAnswer`). */
  refresh: (refreshToken: string) => Promise<RefreshedTokens>
}

export interface PoolLogger {
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

export interface PoolOptions {
  store: PoolStore
  oauth: TokenRefresher
  cooldownMs: number
  clock?: Clock
  log?: PoolLogger
  /** Refresh this long before the access token's `exp` (in the background while it is still valid). */
  refreshMarginMs?: number
  /** Usage counters are written at most this often; state changes are written at once. */
  statsFlushMs?: number
  /** How often resting and idle accounts are checked for a keep-alive refresh (0: never, for tests that drive it). */
  keepAliveEveryMs?: number
}

/** What the proxy gets for one attempt: whose credentials to send. */
export interface Lease {
  account: Account
  accessToken: string
  chatgptAccountId: string
}

/** The proxy's report of one attempt: the answer (bodies of failure statuses already read) and its own handle. */
export interface Sent<T> {
  answer: UpstreamAnswer
  value: T
}

export interface Skip {
  account: string
  reason: string
}

export type ServeResult<T> =
  | { kind: 'delivered', account: Account, attempts: number, value: T, skipped: Skip[] }
  | { kind: 'exhausted', attempts: number, resetsAt: number | null, skipped: Skip[] }
  | { kind: 'aborted', attempts: number, skipped: Skip[] }

export interface ImportInput {
  idToken: string
  accessToken: string
  refreshToken: string
  accountId?: string | null
  lastRefreshAt?: number | null
  /** Replace the held tokens even when these look older (a person's explicit choice). */
  force?: boolean
}

/** What an import did: added the account, replaced its tokens, or nothing (the same tokens again). */
export type ImportOutcome = 'created' | 'updated' | 'unchanged'

export class PoolError extends Error {
  constructor (message: string, readonly statusCode: number) {
    super(message)
    this.name = 'PoolError'
  }
}

const NO_DELAY = 0
const PROACTIVE_BACKOFF_START_MS = 30_000
const PROACTIVE_BACKOFF_MAX_MS = 10 * 60_000
/** Below this much remaining life a request waits for the refresh instead of using the old token. */
const MUST_REFRESH_MS = 30_000

/**
 * The heart of the service: which account serves the next request, and what a failure does to it.
 * Sticky: the account that last worked keeps serving until it fails; then the next usable one in
 * add order takes over. Knows nothing of HTTP: the proxy hands it a `send` function.
 */
export class AccountPool extends EventEmitter {
  private accounts: Account[] = []
  private readonly byId = new Map<string, Account>()
  /** Each account's index in `accounts`: the account after the sticky one is found without a scan. */
  private readonly position = new Map<string, number>()
  private sticky: string | null = null
  private readonly refreshing = new Map<string, Promise<void>>()
  private readonly proactiveRetryAt = new Map<string, { at: number, backoffMs: number }>()
  private statsTimer: NodeJS.Timeout | null = null
  private keepAliveTimer: NodeJS.Timeout | null = null
  private readonly clock: Clock
  private readonly refreshMarginMs: number
  private readonly statsFlushMs: number
  private closed = false
  /** Set when this process may no longer use the tokens (its store lock was lost): no more refreshes. */
  private retiredBecause: string | null = null

  private constructor (private readonly opts: PoolOptions) {
    super()
    this.clock = opts.clock ?? { now: Date.now }
    this.refreshMarginMs = opts.refreshMarginMs ?? 5 * 60_000
    this.statsFlushMs = opts.statsFlushMs ?? 1000
  }

  static async create (opts: PoolOptions): Promise<AccountPool> {
    const pool = new AccountPool(opts)
    const data = await opts.store.load()
    pool.accounts = data.accounts
    pool.reindex()
    pool.sticky = data.sticky !== null && pool.byId.has(data.sticky) ? data.sticky : null
    pool.noteInterruptedRefreshes()
    const every = opts.keepAliveEveryMs ?? 60_000
    if (every > 0) {
      pool.keepAliveTimer = setInterval(() => { pool.keepAlive() }, every)
      pool.keepAliveTimer.unref()
    }
    return pool
  }

  now (): number {
    return this.clock.now()
  }

  get cooldownMs (): number {
    return this.opts.cooldownMs
  }

  list (): readonly Account[] {
    return this.accounts
  }

  get (id: string): Account | undefined {
    return this.byId.get(id)
  }

  /** The account serving now: the sticky one if usable, else the one the next request would get. */
  currentId (): string | null {
    return this.pick(new Set())?.id ?? null
  }

  /**
   * The account for the next attempt: the preferred one (a conversation's own) if usable, else the
   * sticky one, else the next usable account after it in add order. O(1) on the common path.
   */
  pick (exclude: ReadonlySet<string>, prefer?: string | null): Account | null {
    const now = this.now()
    const chosen = this.usableById(prefer, exclude, now) ?? this.usableById(this.sticky, exclude, now)
    if (chosen !== null) return chosen
    const count = this.accounts.length
    if (count === 0) return null
    const stickyIndex = this.sticky === null ? -1 : this.position.get(this.sticky) ?? -1
    for (let step = 1; step <= count; step++) {
      const account = this.accounts[(stickyIndex + step + count) % count]!
      if (!exclude.has(account.id) && isUsable(account, now)) return account
    }
    return null
  }

  private usableById (id: string | null | undefined, exclude: ReadonlySet<string>, now: number): Account | null {
    if (id === null || id === undefined || exclude.has(id)) return null
    const account = this.byId.get(id)
    return account !== undefined && isUsable(account, now) ? account : null
  }

  /** The earliest time a resting account comes back (accounts that need a login never do). */
  earliestReset (): number | null {
    let earliest: number | null = null
    for (const account of this.accounts) {
      if (account.needsLogin || account.disabledUntil === null) continue
      if (earliest === null || account.disabledUntil < earliest) earliest = account.disabledUntil
    }
    return earliest
  }

  /**
   * Runs the failover ladder for one request. For each account: send; a usage limit with a reset
   * time rests it until then; any other failure is retried once, then its token is refreshed and it
   * is tried once more, then it is disabled for the cooldown. Stops at the first answer to deliver.
   */
  async serve<T> (send: (lease: Lease) => Promise<Sent<T>>, opts: { signal?: { readonly aborted: boolean }, prefer?: string | null } = {}): Promise<ServeResult<T>> {
    const tried = new Set<string>()
    const skipped: Skip[] = []
    let attempts = 0
    const aborted = (): boolean => opts.signal?.aborted === true

    for (;;) {
      if (aborted()) return { kind: 'aborted', attempts, skipped }
      const account = this.pick(tried, opts.prefer)
      if (account === null) return { kind: 'exhausted', attempts, resetsAt: this.earliestReset(), skipped }
      tried.add(account.id)

      let failure: Verdict | null = null
      for (let rung = 0; rung < 3; rung++) {
        if (rung === 2) {
          const refreshed = await this.refreshAfterFailure(account, failure)
          if (!refreshed) break
        } else if (rung === 0) {
          const refresh = this.ensureFresh(account)
          if (refresh !== null) await refresh
          if (account.needsLogin) break
        }
        if (aborted()) return { kind: 'aborted', attempts, skipped }
        const lease: Lease = { account, accessToken: account.tokens.accessToken, chatgptAccountId: account.accountId }
        attempts++
        let verdict: Verdict
        let sent: Sent<T> | null = null
        try {
          sent = await send(lease)
          this.observe(account, sent.answer)
          verdict = classifyAnswer(sent.answer, this.now())
        } catch (err) {
          if (aborted()) return { kind: 'aborted', attempts, skipped }
          verdict = classifyError(err)
        }
        if (verdict.kind === 'deliver' && sent !== null) {
          this.recordSuccess(account)
          return { kind: 'delivered', account, attempts, value: sent.value, skipped }
        }
        if (verdict.kind === 'quota') {
          this.rest(account, { until: verdict.resetsAt, kind: 'cooling', reason: verdict.reason, source: verdict.source })
          failure = null
          break
        }
        failure = verdict
        this.noteError(account, verdict.kind === 'retry' ? verdict.reason : 'failed')
      }
      if (failure !== null && !account.needsLogin) {
        this.rest(account, { until: this.now() + this.opts.cooldownMs, kind: 'disabled', reason: failure.kind === 'retry' ? failure.reason : 'failed', source: 'cooldown' })
      }
      skipped.push({ account: account.id, reason: account.disabledReason ?? account.lastError ?? 'unusable' })
      this.emit('failover', { account: account.id, kind: account.needsLogin ? 'needs_login' : account.disabledKind ?? 'disabled', reason: account.disabledReason })
    }
  }

  /** Rests an account (cooling for a known reset, disabled for the cooldown) and moves on from it. */
  rest (account: Account, o: { until: number, kind: 'cooling' | 'disabled', reason: string, source: string }): void {
    account.disabledUntil = o.until
    account.disabledKind = o.kind
    account.disabledReason = o.reason
    account.disabledSource = o.source
    if (o.kind === 'disabled') this.noteError(account, o.reason)
    this.opts.log?.warn({ account: account.id, until: new Date(o.until).toISOString(), reason: o.reason, source: o.source }, `account ${o.kind === 'cooling' ? 'cooling down' : 'disabled'}`)
    this.emit('rest', { account: account.id, kind: o.kind, until: o.until, source: o.source })
    void this.persist()
  }

  /**
   * A `response.failed` in a stream already passed to the client: a quota error rests the account
   * (the next request goes elsewhere), anything else is recorded as its last error.
   */
  reportStreamFailure (account: Account, error: Record<string, unknown>): void {
    const verdict = classifyStreamFailure(error, this.now())
    if (verdict.kind === 'quota') {
      this.rest(account, { until: verdict.resetsAt, kind: 'cooling', reason: verdict.reason, source: verdict.source })
    } else if (verdict.kind === 'retry') {
      this.noteError(account, verdict.reason)
      this.scheduleStatsWrite()
    }
  }

  /**
   * Refreshes when the access token is close to its `exp`: in the background while it still works.
   * Returns the refresh to wait for, or null when there is none (the common case costs no promise).
   */
  ensureFresh (account: Account): Promise<void> | null {
    const expiresAt = account.accessExpiresAt
    if (expiresAt === null) return null
    const now = this.now()
    const remaining = expiresAt - now
    if (remaining > this.refreshMarginMs) return null
    const retry = this.proactiveRetryAt.get(account.id)
    if (remaining > MUST_REFRESH_MS) {
      if (retry === undefined || retry.at <= now) this.refreshTokens(account).catch(() => {}) // outcome recorded on the account; the old token still works
      return null
    }
    return this.refreshTokens(account).catch(() => {})
  }

  /**
   * Refreshes, in the background, the accounts that rest or sit unused but need it (see
   * keepAliveReason); failures back off like any proactive refresh. Returns the refreshes started.
   */
  keepAlive (): Array<Promise<void>> {
    if (this.closed) return []
    const now = this.now()
    const started: Array<Promise<void>> = []
    for (const account of this.accounts) {
      const reason = keepAliveReason(account, now, this.refreshMarginMs)
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
  private noteInterruptedRefreshes (): void {
    for (const account of this.accounts) {
      if (account.refreshingSince === undefined) continue
      const since = new Date(account.refreshingSince).toISOString()
      delete account.refreshingSince
      this.noteError(account, `a token refresh was under way when the service stopped (${since}); if its answer was lost, this account will need a new login`)
      this.opts.log?.warn({ account: account.id, since }, 'a token refresh was interrupted by the last stop; its answer may be lost')
    }
  }

  /** The ladder's refresh rung. False when the account cannot go on (needs a login, or the refresh failed). */
  private async refreshAfterFailure (account: Account, failure: Verdict | null): Promise<boolean> {
    try {
      await this.refreshTokens(account)
      return true
    } catch (err) {
      if (failure?.kind === 'retry' && !account.needsLogin) {
        failure.reason = `${failure.reason}; refresh failed: ${(err as Error).message}`
      }
      return false
    }
  }

  /**
   * One refresh at a time per account (concurrent callers share it). The rotated refresh token is
   * written to disk before anyone can use the new access token: refresh tokens are single use, so
   * losing the new one would lose the account.
   */
  refreshTokens (account: Account): Promise<void> {
    if (this.retiredBecause !== null) return Promise.reject(new RefreshError(`no refresh: ${this.retiredBecause}`, null, null))
    const running = this.refreshing.get(account.id)
    if (running !== undefined) return running
    const refresh = this.doRefresh(account).finally(() => {
      this.refreshing.delete(account.id)
      delete account.refreshingSince // on disk with the next write
    })
    this.refreshing.set(account.id, refresh)
    return refresh
  }

  private async doRefresh (account: Account): Promise<void> {
    const startedFrom = account.tokens
    await this.requireWritableStore(account)
    let answer: RefreshedTokens
    try {
      answer = await this.opts.oauth.refresh(startedFrom.refreshToken)
    } catch (err) {
      // A new sign-in landed meanwhile: this failure concerns tokens the account no longer holds.
      if (!this.stillHolds(account, startedFrom)) throw err
      const permanent = err instanceof RefreshError && err.permanent
      if (permanent) {
        account.needsLogin = true
        account.disabledReason = `${(err as RefreshError).code ?? 'refresh refused'}: sign in to this account again`
        account.disabledSource = 'refresh'
        this.noteError(account, account.disabledReason)
        this.opts.log?.error({ account: account.id, code: (err as RefreshError).code }, 'refresh token refused for good: the account needs a new login')
        await this.persist()
      } else {
        const previous = this.proactiveRetryAt.get(account.id)
        const backoffMs = Math.min(previous === undefined ? PROACTIVE_BACKOFF_START_MS : previous.backoffMs * 2, PROACTIVE_BACKOFF_MAX_MS)
        this.proactiveRetryAt.set(account.id, { at: this.now() + backoffMs, backoffMs })
        this.noteError(account, `token refresh failed: ${(err as Error).message}`)
        this.opts.log?.warn({ account: account.id, retryInMs: backoffMs, err: (err as Error).message }, 'token refresh failed; will retry')
      }
      this.emit('refresh', { account: account.id, result: permanent ? 'permanent_failure' : 'transient_failure' })
      throw err
    }
    if (!this.stillHolds(account, startedFrom)) {
      // Compare-and-set: a sign-in imported meanwhile is newer than this refresh's starting point.
      this.opts.log?.info({ account: account.id }, 'refresh answer set aside: the account was signed in again meanwhile')
      return
    }
    account.spentRefreshTokens = rememberSpent(account.spentRefreshTokens, startedFrom.refreshToken)
    delete account.refreshingSince
    this.applyTokens(account, {
      idToken: answer.idToken ?? startedFrom.idToken,
      accessToken: answer.accessToken,
      refreshToken: answer.refreshToken ?? startedFrom.refreshToken
    })
    account.lastRefreshAt = this.now()
    this.proactiveRetryAt.delete(account.id)
    // Resolves once the rotated tokens are on disk (or the write failed and was reported: the store
    // keeps retrying, and a stop waits for it); only then may anyone use them.
    await this.persist()
    this.emit('refresh', { account: account.id, result: 'ok' })
    this.opts.log?.info({ account: account.id }, 'tokens refreshed')
  }

  /** True while `account` is still in the pool holding exactly `tokens`. */
  private stillHolds (account: Account, tokens: TokenSet): boolean {
    return account.tokens === tokens && this.byId.get(account.id) === account
  }

  /**
   * A refresh spends the refresh token: its answer must be saveable. The state is written first;
   * if that fails (disk full, read-only) the refresh is not attempted and the old token stays valid.
   */
  private async requireWritableStore (account: Account): Promise<void> {
    account.refreshingSince = this.now() // recorded with this write: a crash mid-refresh is known at the next start
    if (await this.save()) return
    delete account.refreshingSince
    const message = 'token refresh postponed: the token file cannot be written, and a rotated refresh token must be saved before it is used'
    this.noteError(account, message)
    this.emit('refresh', { account: account.id, result: 'transient_failure' })
    throw new RefreshError(message, null, null)
  }

  private applyTokens (account: Account, tokens: TokenSet): void {
    account.tokens = tokens
    const accessClaims = decodeJwtPayload(tokens.accessToken)
    account.accessExpiresAt = expiresAtMs(accessClaims)
    const identity = readIdentity(decodeJwtPayload(tokens.idToken), accessClaims)
    account.email = identity.email ?? account.email
    account.plan = identity.plan ?? account.plan
    account.needsLogin = false
    if (account.disabledSource === 'refresh') this.clearRest(account)
  }

  private observe (account: Account, answer: UpstreamAnswer): void {
    const quota = readQuotaHeaders(answer.headers, this.now())
    if (quota !== null) account.quota = quota
  }

  private recordSuccess (account: Account): void {
    account.lastUsedAt = this.now()
    account.requests++
    if (this.sticky !== account.id) {
      this.sticky = account.id
      void this.persist()
    } else {
      this.scheduleStatsWrite()
    }
  }

  private noteError (account: Account, message: string): void {
    account.lastError = message
    account.lastErrorAt = this.now()
  }

  private clearRest (account: Account): void {
    account.disabledUntil = null
    account.disabledKind = null
    account.disabledReason = null
    account.disabledSource = null
  }

  /** Rebuilds the lookups after the list changed other than by an append (rare: O(n)). */
  private reindex (): void {
    this.byId.clear()
    this.position.clear()
    this.accounts.forEach((account, index) => {
      this.byId.set(account.id, account)
      this.position.set(account.id, index)
    })
  }

  // ---- management ----

  /**
   * Adds an account from a fresh token set, or updates the same account in place. Tokens older than
   * the held ones are refused (409) unless `force`; the very same tokens again change nothing.
   */
  async importTokens (input: ImportInput): Promise<{ account: Account, created: boolean, outcome: ImportOutcome }> {
    const idClaims = decodeJwtPayload(input.idToken)
    const accessClaims = decodeJwtPayload(input.accessToken)
    if (idClaims === null) throw new PoolError('id_token is not a JWT', 400)
    const identity = readIdentity(idClaims, accessClaims)
    const accountId = input.accountId ?? identity.accountId
    if (accountId === null) throw new PoolError('the id_token names no ChatGPT account (no chatgpt_account_id claim)', 400)
    if (input.accountId != null && identity.accountId !== null && input.accountId !== identity.accountId) {
      throw new PoolError('account_id does not match the id_token', 400)
    }
    const id = accountKey(accountId, identity.userId ?? identity.email)
    const tokens: TokenSet = { idToken: input.idToken, accessToken: input.accessToken, refreshToken: input.refreshToken }
    let account = this.byId.get(id)
    const created = account === undefined
    if (account !== undefined) {
      const verdict = compareImport(account, { tokens, lastRefreshAt: input.lastRefreshAt ?? null })
      if (verdict.kind === 'identical') return { account, created: false, outcome: 'unchanged' }
      if (verdict.kind === 'older' && input.force !== true) {
        throw new PoolError(`these tokens are older than the pool's for this account: ${verdict.why}; importing them would bring back a spent refresh token (use force to import anyway)`, 409)
      }
    }
    if (account === undefined) {
      account = newAccount({
        id,
        email: identity.email,
        accountId,
        userId: identity.userId,
        plan: identity.plan,
        tokens,
        addedAt: this.now()
      })
      this.position.set(id, this.accounts.length)
      this.accounts.push(account)
      this.byId.set(id, account)
    } else {
      account.spentRefreshTokens = account.spentRefreshTokens?.filter((f) => f !== tokenFingerprint(tokens.refreshToken))
    }
    this.applyTokens(account, tokens)
    account.lastRefreshAt = input.lastRefreshAt ?? this.now()
    if (account.disabledKind === 'disabled') this.clearRest(account) // a fresh login is a fresh start
    this.proactiveRetryAt.delete(id)
    await this.persist()
    this.emit('change')
    return { account, created, outcome: created ? 'created' : 'updated' }
  }

  async remove (id: string): Promise<boolean> {
    const account = this.byId.get(id)
    if (account === undefined) return false
    this.accounts = this.accounts.filter((candidate) => candidate.id !== id)
    this.reindex()
    this.proactiveRetryAt.delete(id)
    if (this.sticky === id) this.sticky = null
    await this.persist()
    this.emit('change')
    return true
  }

  /** Ends a rest now (cooldown or disable); the account is usable again at once. */
  async enable (id: string): Promise<Account | undefined> {
    const account = this.byId.get(id)
    if (account === undefined) return undefined
    if (account.disabledSource !== 'refresh') this.clearRest(account)
    await this.persist()
    this.emit('change')
    return account
  }

  /** Makes an account the sticky one (it must be usable). */
  async select (id: string): Promise<Account | undefined> {
    const account = this.byId.get(id)
    if (account === undefined) return undefined
    if (!isUsable(account, this.now())) throw new PoolError('that account is not usable now: enable it (or sign it in again) first', 409)
    this.sticky = id
    await this.persist()
    this.emit('change')
    return account
  }

  /** A refresh asked for by a person: forced, and its error reported. */
  async forceRefresh (id: string): Promise<Account | undefined> {
    const account = this.byId.get(id)
    if (account === undefined) return undefined
    await this.refreshTokens(account)
    return account
  }

  /** Stops all refreshes for good: another process may hold these refresh tokens now. */
  retire (reason: string): void {
    this.retiredBecause = reason
  }

  stickyId (): string | null {
    return this.sticky
  }

  // ---- persistence ----

  snapshot (): StoreData {
    return { version: 1, sticky: this.sticky, accounts: this.accounts }
  }

  /** Writes the state now. A failed write (disk full, read-only) is logged and shown on the accounts; serving goes on. */
  async persist (): Promise<void> {
    await this.save()
  }

  /** Writes the state; false (after reporting it) when the write failed. */
  private async save (): Promise<boolean> {
    if (this.statsTimer !== null) {
      clearTimeout(this.statsTimer)
      this.statsTimer = null
    }
    try {
      await this.opts.store.save(this.snapshot())
      return true
    } catch (err) {
      const message = `could not save the token file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
      this.opts.log?.error({ err: (err as Error).message }, message)
      for (const account of this.accounts) this.noteError(account, message)
      this.emit('persist-error', err)
      return false
    }
  }

  private scheduleStatsWrite (): void {
    if (this.statsTimer !== null || this.closed) return
    this.statsTimer = setTimeout(() => {
      this.statsTimer = null
      void this.persist()
    }, this.statsFlushMs === NO_DELAY ? 0 : this.statsFlushMs)
    this.statsTimer.unref()
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.keepAliveTimer !== null) clearInterval(this.keepAliveTimer)
    await Promise.allSettled([...this.refreshing.values()])
    await this.persist()
    await this.opts.store.flush()
  }
}

/** A stable short id for an account: one ChatGPT workspace may hold several users, so both count. */
export function accountKey (accountId: string, user: string | null): string {
  return createHash('sha256').update(`${accountId}\u0000${user ?? ''}`).digest('hex').slice(0, 12)
}
