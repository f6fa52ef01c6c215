import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { isBrieflyResting, isUsable, modelLimitFor, newAccount, type Account, type DisableKind, type ModelLimit, type TokenSet } from '../store/records.js'
import { classifyAnswer, classifyError, classifyStreamFailure, type LimitFamily, type UpstreamAnswer, type Verdict } from './failover-policy.js'
import { decodeJwtPayload, expiresAtMs, readIdentity } from '../tokens/jwt.js'
import { compareImport, tokenFingerprint } from '../tokens/token-lineage.js'
import { RefreshCoordinator, type RefreshOutcome, type TokenRefresher } from '../tokens/refresh-coordinator.js'
import { readQuotaHeaders } from './quota.js'
import type { MemoryEntry, PoolStore, SharedChange, StoreData } from '../store/port.js'
import { UpstreamTrouble, type Outage, type TroubleOptions } from './upstream-trouble.js'

export interface Clock {
  now: () => number
}

export type { PoolStore } from '../store/port.js'
export type { TokenRefresher } from '../tokens/refresh-coordinator.js'

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
  /** How often resting and idle accounts are checked for a keep-alive refresh (0: never, for tests that drive it). */
  keepAliveEveryMs?: number
  /** Usage counters are written at most this often; state changes are written at once. */
  statsFlushMs?: number
  /** Brief rests and outage detection for the upstream's trouble (defaults: 30 s doubling to 5 min; 60 s window). */
  upstreamTrouble?: Partial<TroubleOptions>
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

/** Why the ladder moved on from an account; `overload` is the upstream saying it is overloaded (HTTP or in-stream). */
export type SkipCause = 'quota' | 'model_quota' | 'account' | 'needs_login' | 'upstream' | 'overload' | 'issuer'

export interface Skip {
  account: string
  reason: string
  cause: SkipCause
}

/** Why no account could serve: what the client is told (see exhausted-answer.ts). */
export type Exhaustion =
  | { kind: 'empty' }
  | { kind: 'needs_login' }
  /** Only accounts resting briefly for the upstream's or issuer's trouble, and a probe is already out. */
  | { kind: 'waiting', retryAt: number }
  /** Usage limits or cooldowns; `limit` when the earliest return is a model-scoped limit. */
  | { kind: 'limited', resetsAt: number, limit: ModelLimit | null }

export type ServeResult<T> =
  | { kind: 'delivered', account: Account, attempts: number, value: T, skipped: Skip[] }
  | { kind: 'exhausted', attempts: number, exhaustion: Exhaustion, skipped: Skip[] }
  /**
   * The upstream failed and no account is to blame: its answer (`value`, when this request got one)
   * goes to the client as it is. `outage`: several accounts failed the same way.
   */
  | { kind: 'upstream_failed', attempts: number, value: T | null, failure: Omit<Outage, 'since'>, outage: boolean, skipped: Skip[] }
  | { kind: 'aborted', attempts: number, skipped: Skip[] }

export interface ServeOptions {
  signal?: { readonly aborted: boolean }
  /** The conversation's own account, tried first. */
  prefer?: string | null
  /** The request's model (read only when a model-scoped limit makes it matter). */
  model?: () => string | null
}

/** What one account's ladder ended with. */
type Rung<T> =
  | { kind: 'delivered', sent: Sent<T> }
  | { kind: 'next', cause: SkipCause }
  | { kind: 'upstream', verdict: Extract<Verdict, { kind: 'upstream' }>, sent: Sent<T> | null }
  | { kind: 'aborted' }

export interface ImportInput {
  idToken: string
  accessToken: string
  refreshToken: string
  accountId?: string | null
  lastRefreshAt?: number | null
  /** The egress proxy to set with the tokens (validated); undefined keeps the account's. */
  proxy?: string | null
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
const REST_MESSAGES = { cooling: 'account cooling down', disabled: 'account disabled', resting: 'account resting briefly: trouble upstream, not its own' } as const
const NO_MODEL = (): null => null
/** An issuer back-off not yet known (a refresh never failed): the first brief rest. */
const FIRST_ISSUER_REST_MS = 30_000

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
  private readonly tokens: RefreshCoordinator
  private statsTimer: NodeJS.Timeout | null = null
  private keepAliveTimer: NodeJS.Timeout | null = null
  private readonly clock: Clock
  private readonly refreshMarginMs: number
  private readonly statsFlushMs: number
  private readonly trouble: UpstreamTrouble
  private closed = false
  /** This instance's name when the pool is shared with others. */
  private readonly servedBy: string | undefined

  private constructor (private readonly opts: PoolOptions) {
    super()
    this.clock = opts.clock ?? { now: Date.now }
    this.refreshMarginMs = opts.refreshMarginMs ?? 5 * 60_000
    this.statsFlushMs = opts.statsFlushMs ?? 1000
    this.trouble = new UpstreamTrouble({ outageWindowMs: 60_000, restStartMs: 30_000, restMaxMs: 5 * 60_000, ...opts.upstreamTrouble })
    this.servedBy = opts.store.shared?.instance
    this.tokens = new RefreshCoordinator({
      oauth: opts.oauth,
      refreshMarginMs: this.refreshMarginMs,
      log: opts.log,
      shared: opts.store.shared,
      host: {
        now: () => this.now(),
        holds: (account, tokens) => this.stillHolds(account, tokens),
        applyTokens: (account, tokens) => { this.applyTokens(account, tokens) },
        noteError: (account, message) => { this.noteError(account, message) },
        save: async () => await this.save(),
        emit: (event, payload) => { this.emit(event, payload) },
        accounts: () => this.accounts
      }
    })
  }

  static async create (opts: PoolOptions): Promise<AccountPool> {
    const pool = new AccountPool(opts)
    const data = await opts.store.load()
    pool.accounts = data.accounts
    for (const account of pool.accounts) {
      account.modelLimits ??= [] // files written before model-scoped limits
      account.proxy ??= null // files written before egress proxies
    }
    pool.reindex()
    pool.sticky = data.sticky !== null && pool.byId.has(data.sticky) ? data.sticky : null
    pool.tokens.noteInterruptedRefreshes()
    opts.store.shared?.onChange((change) => { pool.applyShared(change) })
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

  /** The upstream outage the pool is in, if any. */
  outage (): Outage | null {
    return this.trouble.current
  }

  /**
   * The account for the next attempt: the preferred one (a conversation's own) if usable, else the
   * sticky one, else the next usable account after it in add order. O(1) on the common path.
   * `model` is asked only of accounts with a model-scoped limit.
   */
  pick (exclude: ReadonlySet<string>, prefer?: string | null, model: () => string | null = NO_MODEL): Account | null {
    const now = this.now()
    const chosen = this.usableById(prefer, exclude, now, model) ?? this.usableById(this.sticky, exclude, now, model)
    if (chosen !== null) return chosen
    const count = this.accounts.length
    if (count === 0) return null
    const stickyIndex = this.sticky === null ? -1 : this.position.get(this.sticky) ?? -1
    for (let step = 1; step <= count; step++) {
      const account = this.accounts[(stickyIndex + step + count) % count]!
      if (!exclude.has(account.id) && isUsable(account, now) && this.limitedFor(account, model, now) === null) return account
    }
    return null
  }

  private usableById (id: string | null | undefined, exclude: ReadonlySet<string>, now: number, model: () => string | null): Account | null {
    if (id === null || id === undefined || exclude.has(id)) return null
    const account = this.byId.get(id)
    return account !== undefined && isUsable(account, now) && this.limitedFor(account, model, now) === null ? account : null
  }

  /**
   * Runs the failover policy for one request (design.md): each failure is first attributed — the
   * request's (delivered), the account's quota (rest until the reset: the account, or one limit
   * family), the account's own (retry once → refresh → disable for the cooldown; a 401 refreshes
   * first), or the upstream's (a brief rest, and an outage when several accounts fail alike) —
   * then the next usable account in add order is tried. Stops at the first answer to deliver.
   */
  async serve<T> (send: (lease: Lease) => Promise<Sent<T>>, opts: ServeOptions = {}): Promise<ServeResult<T>> {
    const tried = new Set<string>()
    const skipped: Skip[] = []
    const counter = { attempts: 0 }
    const signal = opts.signal
    let model: string | null | undefined
    const modelOf = (): string | null => (model ??= (opts.model ?? NO_MODEL)())
    let lastUpstream: Extract<Rung<T>, { kind: 'upstream' }> | null = null

    for (;;) {
      if (signal?.aborted === true) return { kind: 'aborted', attempts: counter.attempts, skipped }
      const outage = this.trouble.current
      if (outage !== null && this.trouble.probing) {
        // One request at a time finds out whether the upstream is back; the others hear it is not.
        return { kind: 'upstream_failed', attempts: counter.attempts, value: null, failure: outage, outage: true, skipped }
      }
      const choice = this.choose(tried, opts.prefer, modelOf)
      if (choice === null) {
        if (lastUpstream !== null) return this.upstreamFailed(lastUpstream, counter.attempts, false, skipped)
        return { kind: 'exhausted', attempts: counter.attempts, exhaustion: this.exhaustion(modelOf), skipped }
      }
      const { account, probe } = choice
      tried.add(account.id)
      const probing = probe || outage !== null
      if (probing) this.trouble.probing = true
      let rung: Rung<T>
      try {
        rung = await this.ladder(account, send, counter, modelOf, signal)
      } finally {
        if (probing) this.trouble.probing = false
      }
      switch (rung.kind) {
        case 'aborted': return { kind: 'aborted', attempts: counter.attempts, skipped }
        case 'delivered': return { kind: 'delivered', account, attempts: counter.attempts, value: rung.sent.value, skipped }
        case 'upstream': {
          lastUpstream = rung
          const seen = this.trouble.report(account.id, failureOf(rung), this.now())
          if (seen !== null) {
            if (seen.started) this.outageStarted(seen.outage)
            return this.upstreamFailed(rung, counter.attempts, true, skipped)
          }
          this.restBriefly(account, 'upstream', rung.verdict.reason, this.trouble.nextRestMs(account.id))
          this.skip(skipped, account, rung.verdict.fault === 'overloaded' ? 'overload' : 'upstream')
          break
        }
        case 'next':
          if (outage !== null) this.outageEnded() // the upstream answered for real
          this.skip(skipped, account, rung.cause)
          break
      }
    }
  }

  /**
   * One account's ladder. Returns when the account delivered, must be left (it rests or needs a
   * login), or the upstream failed (the caller tells an outage from one account's trouble).
   */
  private async ladder<T> (account: Account, send: (lease: Lease) => Promise<Sent<T>>, counter: { attempts: number }, modelOf: () => string | null, signal: ServeOptions['signal']): Promise<Rung<T>> {
    const refresh = this.ensureFresh(account)
    // Most tokens are fresh: known without awaiting, which would cost a turn of the microtask queue per request.
    const fresh = refresh === null ? (account.needsLogin ? 'needs_login' : 'ok') : await this.afterRefresh(account, refresh)
    if (fresh !== 'ok') return this.leave(account, fresh)
    let retried = false
    let refreshed = false
    // A function, not a narrowed property: the client may leave while an attempt is awaited.
    const aborted = (): boolean => signal?.aborted === true
    for (;;) {
      if (aborted()) return { kind: 'aborted' }
      const lease: Lease = { account, accessToken: account.tokens.accessToken, chatgptAccountId: account.accountId }
      counter.attempts++
      let verdict: Verdict
      let sent: Sent<T> | null = null
      try {
        sent = await send(lease)
        this.observe(account, sent.answer)
        verdict = classifyAnswer(sent.answer, this.now())
      } catch (err) {
        if (aborted()) return { kind: 'aborted' }
        verdict = classifyError(err)
      }
      switch (verdict.kind) {
        case 'deliver':
          if (sent === null) break
          this.recordSuccess(account)
          return { kind: 'delivered', sent }
        case 'upstream':
          this.noteError(account, verdict.reason)
          return { kind: 'upstream', verdict, sent }
        case 'quota': {
          const model = verdict.limit === undefined ? null : modelOf()
          if (verdict.limit !== undefined && model !== null) {
            this.limitModel(account, verdict.limit, model, verdict.resetsAt, verdict.source)
            return { kind: 'next', cause: 'model_quota' }
          }
          this.rest(account, { until: verdict.resetsAt, kind: 'cooling', reason: verdict.reason, source: verdict.source })
          return { kind: 'next', cause: 'quota' }
        }
        case 'account':
          this.noteError(account, verdict.reason)
          // A 401 refreshes at once (as Codex does): the backend just refused that token. A broken
          // proxy does not: the refresh would go through it too; one retry, then the cooldown.
          if (!refreshed && verdict.egress !== true && (verdict.auth === true || retried)) {
            refreshed = true
            const outcome = await this.refreshOutcome(account)
            if (outcome !== 'ok') return this.leave(account, outcome, verdict.reason)
            continue
          }
          if (!retried && !refreshed) {
            retried = true
            continue
          }
          this.rest(account, { until: this.now() + this.opts.cooldownMs, kind: 'disabled', reason: verdict.reason, source: 'cooldown' })
          return { kind: 'next', cause: 'account' }
      }
    }
  }

  /** The account cannot go on: it needs a login, or waits for the issuer to come back. */
  private leave (account: Account, outcome: Exclude<RefreshOutcome, 'ok'>, failure?: string): Rung<never> {
    if (outcome === 'needs_login') return { kind: 'next', cause: 'needs_login' }
    const retryAt = this.tokens.retryAt(account.id)
    const ms = retryAt === null ? FIRST_ISSUER_REST_MS : Math.max(1000, retryAt - this.now())
    const why = `waiting for the issuer: ${account.lastError ?? 'token refresh failed'}`
    this.restBriefly(account, 'issuer', failure === undefined ? why : `${failure}; ${why}`, ms)
    return { kind: 'next', cause: 'issuer' }
  }

  /** Whether a token being refreshed (it was nearly dead) is good enough to send once the refresh is over. */
  private async afterRefresh (account: Account, refresh: Promise<RefreshOutcome>): Promise<RefreshOutcome> {
    const outcome = await refresh
    if (outcome !== 'issuer_down') return outcome
    // The issuer is unreachable: a token with life left still serves; a dead one must wait.
    return account.accessExpiresAt !== null && account.accessExpiresAt <= this.now() ? 'issuer_down' : 'ok'
  }

  private refreshOutcome (account: Account): Promise<RefreshOutcome> {
    return this.tokens.refreshOutcome(account)
  }

  /**
   * The account for the next attempt, or a probe: when no account is usable, one briefly resting
   * for someone else's trouble (the soonest back) is tried by one request at a time.
   */
  private choose (exclude: ReadonlySet<string>, prefer: string | null | undefined, modelOf: () => string | null): { account: Account, probe: boolean } | null {
    const account = this.pick(exclude, prefer, modelOf)
    if (account !== null) return { account, probe: false }
    if (this.trouble.probing) return null
    const now = this.now()
    let soonest: Account | null = null
    for (const candidate of this.accounts) {
      if (exclude.has(candidate.id) || !isBrieflyResting(candidate, now) || this.limitedFor(candidate, modelOf, now) !== null) continue
      if (soonest === null || candidate.disabledUntil! < soonest.disabledUntil!) soonest = candidate
    }
    return soonest === null ? null : { account: soonest, probe: true }
  }

  private upstreamFailed<T> (rung: Extract<Rung<T>, { kind: 'upstream' }>, attempts: number, outage: boolean, skipped: Skip[]): ServeResult<T> {
    return { kind: 'upstream_failed', attempts, value: rung.sent?.value ?? null, failure: failureOf(rung), outage, skipped }
  }

  private skip (skipped: Skip[], account: Account, cause: SkipCause): void {
    const reason = cause === 'model_quota' ? `usage limit for ${account.modelLimits.at(-1)?.name ?? 'a model'}` : account.disabledReason ?? account.lastError ?? 'unusable'
    skipped.push({ account: account.id, reason, cause })
    this.emit('failover', { account: account.id, kind: account.needsLogin ? 'needs_login' : cause === 'model_quota' ? 'cooling' : account.disabledKind ?? 'disabled', cause, reason })
  }

  /** Several accounts failed alike: nobody rests for it; the ones rested for it a moment ago come back. */
  private outageStarted (outage: Outage): void {
    for (const account of this.accounts) {
      if (account.disabledKind === 'resting' && account.disabledSource === 'upstream') this.clearRest(account)
    }
    this.opts.log?.warn({ fault: outage.fault, reason: outage.reason }, 'upstream outage: passing its answers on, resting no account')
    this.emit('outage', { fault: outage.fault })
    void this.persist()
  }

  private outageEnded (): void {
    const ended = this.trouble.end()
    if (ended === null) return
    this.opts.log?.info({ fault: ended.fault, ms: this.now() - ended.since }, 'upstream outage over')
    this.emit('outage-end', { fault: ended.fault })
  }

  /** A short rest for the upstream's or the issuer's trouble: never the cooldown, never a login. */
  private restBriefly (account: Account, cause: 'upstream' | 'issuer', reason: string, ms: number): void {
    this.rest(account, { until: this.now() + ms, kind: 'resting', reason, source: cause })
  }

  /** A model-scoped limit: the account keeps serving every other model. */
  private limitModel (account: Account, family: LimitFamily, model: string, until: number, source: string): void {
    const now = this.now()
    account.modelLimits = account.modelLimits.filter((limit) => limit.until > now)
    let limit = account.modelLimits.find((candidate) => candidate.family === family.family)
    if (limit === undefined) {
      limit = { family: family.family, name: family.name, models: [], until, source }
      account.modelLimits.push(limit)
    }
    if (!limit.models.includes(model)) limit.models.push(model)
    Object.assign(limit, { name: family.name, until, source })
    this.opts.log?.warn({ account: account.id, email: account.email, family: family.family, model, until: new Date(until).toISOString(), source }, `account reached its usage limit for ${family.name}: other models go on`)
    this.emit('rest', { account: account.id, kind: 'cooling', until, source, family: family.family })
    void this.persist()
  }

  private limitedFor (account: Account, modelOf: () => string | null, now: number): ModelLimit | null {
    return account.modelLimits.length === 0 ? null : modelLimitFor(account, modelOf(), now)
  }

  /** Why nothing can serve `model` now, and when that changes. */
  exhaustion (modelOf: () => string | null = NO_MODEL): Exhaustion {
    if (this.accounts.length === 0) return { kind: 'empty' }
    const now = this.now()
    let earliest: { at: number, limit: ModelLimit | null, brief: boolean } | null = null
    for (const account of this.accounts) {
      if (account.needsLogin) continue
      const rest = account.disabledUntil !== null && account.disabledUntil > now ? account.disabledUntil : now
      const limit = this.limitedFor(account, modelOf, now)
      const at = Math.max(rest, limit?.until ?? now)
      const candidate = { at, limit: limit !== null && limit.until >= rest ? limit : null, brief: limit === null && account.disabledKind === 'resting' && rest > now }
      if (earliest === null || candidate.at < earliest.at) earliest = candidate
    }
    if (earliest === null) return { kind: 'needs_login' }
    if (earliest.brief || earliest.at <= now) return { kind: 'waiting', retryAt: Math.max(earliest.at, now + 1000) }
    return { kind: 'limited', resetsAt: earliest.at, limit: earliest.limit }
  }

  /** Rests an account (cooling for a known reset, disabled for the cooldown) and moves on from it. */
  rest (account: Account, o: { until: number, kind: DisableKind, reason: string, source: string }): void {
    account.disabledUntil = o.until
    account.disabledKind = o.kind
    account.disabledReason = o.reason
    account.disabledSource = o.source
    if (o.kind !== 'cooling') this.noteError(account, o.reason)
    this.opts.log?.warn({ account: account.id, email: account.email, until: new Date(o.until).toISOString(), reason: o.reason, source: o.source }, REST_MESSAGES[o.kind])
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
    } else if (verdict.kind === 'account') {
      this.noteError(account, verdict.reason)
      this.scheduleStatsWrite()
    }
  }

  /**
   * Refreshes when the access token is close to its `exp`: in the background while it still works.
   * Returns the refresh to wait for, or null when there is none (the common case costs no promise).
   */
  ensureFresh (account: Account): Promise<RefreshOutcome> | null {
    return this.tokens.ensureFresh(account)
  }

  /** Refreshes, in the background, the accounts that rest or sit unused but need it. Returns the refreshes started. */
  keepAlive (): Array<Promise<void>> {
    if (this.closed) return []
    return this.tokens.keepAlive()
  }

  /** One refresh at a time per account (see RefreshCoordinator). */
  refreshTokens (account: Account): Promise<void> {
    return this.tokens.refreshTokens(account)
  }

  /** True while `account` is still in the pool holding exactly `tokens`. */
  private stillHolds (account: Account, tokens: TokenSet): boolean {
    return account.tokens === tokens && this.byId.get(account.id) === account
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
    if (this.servedBy !== undefined) account.lastServedBy = this.servedBy
    this.trouble.recovered(account.id)
    if (this.trouble.current !== null) this.outageEnded()
    if (account.disabledKind === 'resting') {
      // A probe got through: the trouble it rested for is over.
      this.clearRest(account)
      this.emit('change')
      void this.persist()
    }
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
    if (input.proxy !== undefined) account.proxy = input.proxy
    account.lastRefreshAt = input.lastRefreshAt ?? this.now()
    if (account.disabledKind === 'disabled') this.clearRest(account) // a fresh login is a fresh start
    this.tokens.forget(id)
    await this.persist()
    this.emit('change')
    return { account, created, outcome: created ? 'created' : 'updated' }
  }

  async remove (id: string): Promise<boolean> {
    const account = this.byId.get(id)
    if (account === undefined) return false
    this.accounts = this.accounts.filter((candidate) => candidate.id !== id)
    this.reindex()
    this.tokens.forget(id)
    this.trouble.forget(id)
    if (this.sticky === id) this.sticky = null
    await this.persist()
    this.emit('change')
    return true
  }

  /** Sets (or with null removes) the account's egress proxy, already validated. */
  async setProxy (id: string, proxy: string | null): Promise<Account | undefined> {
    return await this.change(id, (account) => { account.proxy = proxy })
  }

  /** Ends a rest now (cooldown or disable); the account is usable again at once. */
  async enable (id: string): Promise<Account | undefined> {
    return await this.change(id, (account) => { if (account.disabledSource !== 'refresh') this.clearRest(account) })
  }

  /** Makes an account the sticky one (it must be usable). */
  async select (id: string): Promise<Account | undefined> {
    return await this.change(id, (account) => {
      if (!isUsable(account, this.now())) throw new PoolError('that account is not usable now: enable it (or sign it in again) first', 409)
      this.sticky = id
    })
  }

  /** A person's change to one account: applied, saved, announced. Undefined for an unknown id. */
  private async change (id: string, apply: (account: Account) => void): Promise<Account | undefined> {
    const account = this.byId.get(id)
    if (account === undefined) return undefined
    apply(account)
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
    this.tokens.retire(reason)
  }

  stickyId (): string | null {
    return this.sticky
  }

  /**
   * Mirrors what another instance changed (a shared store's notification): its record replaces
   * ours field by field, so rests, logins and the sticky choice move on every instance at once.
   */
  applyShared (change: SharedChange): void {
    switch (change.kind) {
      case 'account': {
        const theirs = change.account
        const ours = this.byId.get(theirs.id)
        if (ours === undefined) {
          this.position.set(theirs.id, this.accounts.length)
          this.accounts.push(theirs)
          this.byId.set(theirs.id, theirs)
          this.accounts.sort((a, b) => a.addedAt - b.addedAt)
          this.reindex()
        } else {
          theirs.requests = ours.requests + change.othersServed
          const sameTokens = ours.tokens.refreshToken === theirs.tokens.refreshToken && ours.tokens.accessToken === theirs.tokens.accessToken && ours.tokens.idToken === theirs.tokens.idToken
          // The same tokens keep their object: a refresh under way compares it to know nothing changed.
          Object.assign(ours, theirs, sameTokens ? { tokens: ours.tokens } : {})
          if (!sameTokens) this.tokens.forget(ours.id)
        }
        break
      }
      case 'removed':
        if (!this.byId.has(change.id)) return
        this.accounts = this.accounts.filter((candidate) => candidate.id !== change.id)
        this.reindex()
        this.tokens.forget(change.id)
        this.trouble.forget(change.id)
        if (this.sticky === change.id) this.sticky = null
        break
      case 'sticky':
        this.sticky = change.id !== null && this.byId.has(change.id) ? change.id : null
        break
    }
    this.emit('change')
  }

  /** In a pool shared by several instances: what one learns of conversations, all know. */
  shareConversations (memory: { onLearn: ((entry: MemoryEntry) => void) | null, remember: (entry: MemoryEntry) => void }): void {
    const shared = this.opts.store.shared
    if (shared === undefined) return
    memory.onLearn = (entry) => { shared.shareMemory(entry) }
    shared.onMemory((entries) => { for (const entry of entries) memory.remember(entry) })
  }

  /** True when several instances share this pool (through a shared store). */
  get shared (): boolean {
    return this.opts.store.shared !== undefined
  }

  /** This instance's name in a shared pool. */
  get instanceName (): string | null {
    return this.opts.store.shared?.instance ?? null
  }

  /** The instance holding the account's refresh lease, in a shared pool. */
  leaseHolder (id: string): string | null {
    return this.opts.store.shared?.leaseHolder(id) ?? null
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
      const where = this.opts.store.shared === undefined ? 'the token file' : 'the shared store (retried until it is back)'
      const message = `could not save ${where}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
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
    await Promise.allSettled(this.tokens.running())
    await this.persist()
    await this.opts.store.flush()
  }
}

function failureOf (rung: Extract<Rung<unknown>, { kind: 'upstream' }>): Omit<Outage, 'since'> {
  return { fault: rung.verdict.fault, reason: rung.verdict.reason, status: rung.sent?.answer.status ?? null, errorBody: rung.sent?.answer.errorBody ?? null }
}

/** A stable short id for an account: one ChatGPT workspace may hold several users, so both count. */
export function accountKey (accountId: string, user: string | null): string {
  return createHash('sha256').update(`${accountId}\u0000${user ?? ''}`).digest('hex').slice(0, 12)
}
