import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { accountStatus } from './store/records.js'
import type { AccountPool } from './pool/account-pool.js'
import type { TokenUsage } from './store/usage-ledger.js'

/**
 * Counts per pair of label values, added up in a map and handed to their counters at each scrape:
 * a labelled `inc()` builds and checks its labels on every call, and each answer makes ten. A map
 * per first value: the label values are strings kept for long (account ids, key names, statuses),
 * whose hashes are already known, where a key made of both would be a new string to hash per call.
 */
class Tally {
  private readonly pending = new Map<string, Map<string, number[]>>()

  /** Adds to a pair's counts (up to four: a count of answers, or the four kinds of tokens). */
  add (first: string, second: string, a: number, b = 0, c = 0, d = 0): void {
    let seconds = this.pending.get(first)
    if (seconds === undefined) this.pending.set(first, seconds = new Map())
    const values = seconds.get(second)
    if (values === undefined) {
      seconds.set(second, [a, b, c, d])
      return
    }
    values[0]! += a
    values[1]! += b
    values[2]! += c
    values[3]! += d
  }

  drain (each: (first: string, second: string, values: number[]) => void): void {
    for (const [first, seconds] of this.pending) {
      for (const [second, values] of seconds) each(first, second, values)
    }
    this.pending.clear()
  }
}

const TOKEN_TYPES = ['input', 'cached_input', 'output', 'reasoning'] as const

/**
 * Prometheus metrics of the pool and the proxy, in a registry of their own (several apps may
 * live in one process, as in tests). Per-account state is read from the pool at scrape time.
 */
export class PoolMetrics {
  readonly registry = new Registry()
  private readonly failovers: Counter<'kind' | 'cause'>
  private readonly outages: Counter
  private readonly droppedBlobs: Counter
  private readonly refreshes: Counter<'result'>
  private readonly ttfb: Histogram
  private readonly openStreams: Gauge
  /** Answers per (account, status) and (key, status); tokens per (account, '') and (key, ''), one value per type. */
  private readonly answered = new Tally()
  private readonly keyAnswered = new Tally()
  private readonly spent = new Tally()
  private readonly keySpent = new Tally()

  constructor (pool: AccountPool) {
    const registers = [this.registry]
    // Several instances of one shared pool: every series says which instance counted it, so sums add up.
    // Not `instance`: Prometheus sets that label on every target itself (ours would become exported_instance).
    if (pool.instanceName !== null) this.registry.setDefaultLabels({ codex_eq_instance: pool.instanceName })
    collectDefaultMetrics({ register: this.registry, prefix: 'codex_eq_' })
    const answered = this.answered
    const keyAnswered = this.keyAnswered
    const spent = this.spent
    const keySpent = this.keySpent
    // These four live in the registry only: scrapes read them, and `collect` brings in the tallies first.
    new Counter({ name: 'codex_eq_requests_total', help: 'Proxied /v1 requests by the account that served them (none: the pool answered itself) and status', labelNames: ['account', 'status'], registers, collect () { answered.drain((account, status, [n]) => { this.inc({ account, status }, n) }) } })
    new Counter({ name: 'codex_eq_key_requests_total', help: 'Proxied /v1 requests by the client key they came with (none: no key required) and status', labelNames: ['key', 'status'], registers, collect () { keyAnswered.drain((key, status, [n]) => { this.inc({ key, status }, n) }) } })
    new Counter({ name: 'codex_eq_account_tokens_total', help: 'Tokens of delivered answers by the account that served them and type (input, cached_input, output, reasoning; cached_input is part of input, reasoning part of output)', labelNames: ['account', 'type'], registers, collect () { spent.drain((account, _, counts) => { TOKEN_TYPES.forEach((type, i) => { this.inc({ account, type }, counts[i]) }) }) } })
    new Counter({ name: 'codex_eq_key_tokens_total', help: 'Tokens of delivered answers by client key and type (input, cached_input, output, reasoning)', labelNames: ['key', 'type'], registers, collect () { keySpent.drain((key, _, counts) => { TOKEN_TYPES.forEach((type, i) => { this.inc({ key, type }, counts[i]) }) }) } })
    this.failovers = new Counter({ name: 'codex_eq_failovers_total', help: 'Accounts left for the next one during a request, by what happened to them (cooling, disabled, resting, needs_login) and its cause (quota, model_quota, account, needs_login, upstream, overload, issuer)', labelNames: ['kind', 'cause'], registers })
    this.outages = new Counter({ name: 'codex_eq_upstream_outages_total', help: 'Upstream outages seen: the same failure on several accounts at once (no account was rested for them)', registers })
    this.droppedBlobs = new Counter({ name: 'codex_eq_blobs_dropped_total', help: 'Encrypted items of another account dropped from moved conversations before sending', registers })
    this.refreshes = new Counter({ name: 'codex_eq_refreshes_total', help: 'Token refreshes by result (ok, transient_failure, permanent_failure)', labelNames: ['result'], registers })
    this.ttfb = new Histogram({ name: 'codex_eq_upstream_ttfb_seconds', help: 'Time from sending a request upstream to its answer\'s headers', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60], registers })
    this.openStreams = new Gauge({ name: 'codex_eq_open_streams', help: 'Answers being streamed to clients now', registers })

    const state = new Gauge({ name: 'codex_eq_account_state', help: '1 for the state each account is in (active, cooling, disabled, needs_login)', labelNames: ['account', 'state'], registers })
    const cooldown = new Gauge({ name: 'codex_eq_account_cooldown_seconds', help: 'Seconds until a resting account is usable again (0 when usable)', labelNames: ['account'], registers })
    const current = new Gauge({ name: 'codex_eq_account_current', help: '1 for the account serving now', labelNames: ['account'], registers })
    const quota = new Gauge({ name: 'codex_eq_quota_used_percent', help: 'Quota used in each window, as last reported by the backend', labelNames: ['account', 'window'], registers })
    const collectAccounts = (): void => {
      state.reset()
      cooldown.reset()
      current.reset()
      quota.reset()
      const now = pool.now()
      const currentId = pool.currentId()
      for (const account of pool.list()) {
        state.set({ account: account.id, state: accountStatus(account, now) }, 1)
        cooldown.set({ account: account.id }, account.disabledUntil !== null && account.disabledUntil > now ? (account.disabledUntil - now) / 1000 : 0)
        current.set({ account: account.id }, account.id === currentId ? 1 : 0)
        for (const window of ['primary', 'secondary'] as const) {
          const used = account.quota?.[window]?.usedPercent
          if (used !== null && used !== undefined) quota.set({ account: account.id, window }, used)
        }
      }
    }
    // prom-client calls `collect` on each scrape; one gauge drives the refresh of all four.
    Object.assign(state, { collect: collectAccounts })

    pool.on('failover', (event: { kind?: string, cause?: string }) => { this.failovers.inc({ kind: event.kind ?? 'disabled', cause: event.cause ?? 'account' }) })
    pool.on('outage', () => { this.outages.inc() })
    pool.on('refresh', (event: { result: string }) => { this.refreshes.inc({ result: event.result }) })
  }

  served (account: string, status: number, key: string): void {
    const code = String(status)
    this.answered.add(account, code, 1)
    this.keyAnswered.add(key, code, 1)
  }

  tokens (account: string, key: string, usage: TokenUsage): void {
    this.spent.add(account, '', usage.input, usage.cachedInput, usage.output, usage.reasoning)
    this.keySpent.add(key, '', usage.input, usage.cachedInput, usage.output, usage.reasoning)
  }

  blobsDropped (count: number): void {
    this.droppedBlobs.inc(count)
  }

  upstreamAnswered (seconds: number): void {
    this.ttfb.observe(seconds)
  }

  streamOpened (): void {
    this.openStreams.inc()
  }

  streamClosed (): void {
    this.openStreams.dec()
  }
}
