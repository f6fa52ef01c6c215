import {
  DAY_MS, HOUR_MS, addTotals, emptyTotals,
  type QuotaHistory, type QuotaSample, type TokenUsage, type UsageEntry, type UsageQuery, type UsageReport, type UsageTotals
} from './usage-ledger.js'

/** A hard bound besides the retention: past it the oldest hours go first. */
const MAX_ROWS = 200_000

/** The counts of one account × key × model in one hour (hours since the epoch). */
export interface Row {
  hour: number
  account: string
  key: string
  model: string
  requests: number
  input: number
  cachedInput: number
  output: number
  reasoning: number
}

export interface QuotaRow extends QuotaSample { hour: number }

/**
 * The usage ledger's counts in memory, where every question is answered from: the adapters add
 * only where the counts are kept (a file in the auths dir, or a Redis shared by several instances).
 */
export abstract class UsageTally {
  /** Changed only here, so that the latest row and readings below stay the ones in these maps. */
  private readonly rowsById = new Map<string, Row>()
  private readonly quotaById = new Map<string, QuotaRow>()
  /** Tokens per key per hour, for a key's use since any time. */
  protected readonly keyHours = new Map<string, Map<number, number>>()
  /** Per key, its tokens of the latest UTC day it has counts for: a limit check (today's use) is one lookup. */
  private readonly keyDays = new Map<string, { day: number, tokens: number }>()
  /**
   * The row counted last, and each account's latest quota reading: an answer is most often counted
   * where the one before it was, and found here without a key string made and hashed for it.
   * Let go with the rows and readings they are (`clear`, `prune`).
   */
  private lastRow: Row | undefined
  private readonly lastQuota = new Map<string, QuotaRow>()

  protected get rows (): ReadonlyMap<string, Row> {
    return this.rowsById
  }

  protected get quota (): ReadonlyMap<string, QuotaRow> {
    return this.quotaById
  }

  constructor (protected readonly retentionMs: number, protected readonly now: () => number) {}

  /** Called after every change of the counts. */
  protected abstract changed (): void

  record (at: number, entry: UsageEntry): void {
    this.add(Math.floor(at / HOUR_MS), entry.account, entry.key, entry.model, 1, entry)
    this.changed()
  }

  /** Adds counts to a row (created at zero). */
  protected addRow (delta: Row): void {
    this.add(delta.hour, delta.account, delta.key, delta.model, delta.requests, delta)
  }

  // Fields as arguments: an answer's counts are added without a delta object made for the purpose.
  private add (hour: number, account: string, key: string, model: string, requests: number, counts: TokenUsage): void {
    let row = this.lastRow
    if (row === undefined || row.hour !== hour || row.account !== account || row.key !== key || row.model !== model) {
      const id = `${hour}\0${account}\0${key}\0${model}`
      row = this.rowsById.get(id)
      if (row === undefined) {
        row = { hour, account, key, model, requests: 0, input: 0, cachedInput: 0, output: 0, reasoning: 0 }
        this.rowsById.set(id, row)
      }
      this.lastRow = row
    }
    row.requests += requests
    row.input += counts.input
    row.cachedInput += counts.cachedInput
    row.output += counts.output
    row.reasoning += counts.reasoning
    this.countKey(key, hour, counts.input + counts.output)
  }

  /** Keeps the hour's latest reading of an account's windows; true when it moved. */
  recordQuota (at: number, sample: QuotaSample): boolean {
    const hour = Math.floor(at / HOUR_MS)
    const latest = this.lastQuota.get(sample.account)
    let kept = latest !== undefined && latest.hour === hour ? latest : undefined
    if (kept === undefined) {
      kept = this.quotaById.get(quotaId(hour, sample.account))
      if (kept !== undefined && (latest === undefined || latest.hour < hour)) this.lastQuota.set(sample.account, kept)
    }
    // Every answer reports the windows, and they seldom move within an hour: only a change is news.
    if (kept !== undefined && kept.primary === sample.primary && kept.secondary === sample.secondary) return false
    this.keepQuota({ hour, account: sample.account, primary: sample.primary, secondary: sample.secondary })
    this.changed()
    return true
  }

  /** Takes an hour's reading of an account's windows as it is (read back, or from another instance). */
  protected keepQuota (row: QuotaRow): void {
    this.quotaById.set(quotaId(row.hour, row.account), row)
    const latest = this.lastQuota.get(row.account)
    if (latest === undefined || latest.hour <= row.hour) this.lastQuota.set(row.account, row)
  }

  keyTokensSince (key: string, since: number): number {
    const now = this.now()
    if (since % DAY_MS === 0 && since <= now && now - since < DAY_MS) {
      const today = this.keyDays.get(key)
      return today !== undefined && today.day === since / DAY_MS ? today.tokens : 0
    }
    const hours = this.keyHours.get(key)
    if (hours === undefined) return 0
    const first = Math.floor(since / HOUR_MS)
    const last = Math.floor(now / HOUR_MS)
    let sum = 0
    // A limit check asks for today: at most 24 lookups, however long the key's history.
    if (last - first <= 48) {
      for (let hour = first; hour <= last; hour++) sum += hours.get(hour) ?? 0
    } else {
      for (const [hour, tokens] of hours) if (hour >= first) sum += tokens
    }
    return sum
  }

  query (q: UsageQuery): UsageReport {
    const size = q.bucket === 'day' ? DAY_MS : HOUR_MS
    const first = Math.floor(q.from / HOUR_MS)
    const last = Math.ceil(q.to / HOUR_MS)
    const totals = emptyTotals()
    const groups = new Map<string, { totals: UsageTotals, buckets: Map<number, UsageTotals> }>()
    for (const row of this.rows.values()) {
      if (row.hour < first || row.hour >= last) continue
      addTotals(totals, row)
      const name = row[q.by]
      let group = groups.get(name)
      if (group === undefined) groups.set(name, group = { totals: emptyTotals(), buckets: new Map() })
      addTotals(group.totals, row)
      const bucket = Math.floor((row.hour * HOUR_MS) / size) * size
      let point = group.buckets.get(bucket)
      if (point === undefined) group.buckets.set(bucket, point = emptyTotals())
      addTotals(point, row)
    }
    return {
      from: new Date(q.from).toISOString(),
      to: new Date(q.to).toISOString(),
      by: q.by,
      bucket: q.bucket,
      totals,
      groups: [...groups.entries()]
        .sort((a, b) => b[1].totals.total - a[1].totals.total || a[0].localeCompare(b[0]))
        .map(([name, group]) => ({
          name,
          totals: group.totals,
          series: [...group.buckets.entries()].sort((a, b) => a[0] - b[0]).map(([at, point]) => ({ at: new Date(at).toISOString(), ...point }))
        }))
    }
  }

  quotaHistory (from: number, to: number): QuotaHistory {
    const first = Math.floor(from / HOUR_MS)
    const last = Math.ceil(to / HOUR_MS)
    const accounts = new Map<string, Array<{ at: string, hour: number, primary: number | null, secondary: number | null }>>()
    for (const row of this.quota.values()) {
      if (row.hour < first || row.hour >= last) continue
      let series = accounts.get(row.account)
      if (series === undefined) accounts.set(row.account, series = [])
      series.push({ at: new Date(row.hour * HOUR_MS).toISOString(), hour: row.hour, primary: row.primary, secondary: row.secondary })
    }
    return {
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      accounts: [...accounts.entries()].map(([account, series]) => ({
        account,
        series: series.sort((a, b) => a.hour - b.hour).map(({ at, primary, secondary }) => ({ at, primary, secondary }))
      }))
    }
  }

  protected countKey (key: string, hour: number, tokens: number): void {
    let hours = this.keyHours.get(key)
    if (hours === undefined) this.keyHours.set(key, hours = new Map())
    hours.set(hour, (hours.get(hour) ?? 0) + tokens)
    const day = Math.floor(hour * HOUR_MS / DAY_MS)
    const latest = this.keyDays.get(key)
    if (latest === undefined || latest.day < day) this.keyDays.set(key, { day, tokens: this.dayTokens(hours, day) })
    else if (latest.day === day) latest.tokens += tokens
  }

  /** A key's tokens in the hours of one day, summed from its hours. */
  private dayTokens (hours: Map<number, number>, day: number): number {
    const first = day * DAY_MS / HOUR_MS
    let sum = 0
    for (let hour = first; hour < first + DAY_MS / HOUR_MS; hour++) sum += hours.get(hour) ?? 0
    return sum
  }

  /** Forgets every count. */
  protected clear (): void {
    this.lastRow = undefined
    this.lastQuota.clear()
    this.rowsById.clear()
    this.quotaById.clear()
    this.keyHours.clear()
    this.keyDays.clear()
  }

  protected prune (): void {
    const oldest = Math.floor((this.now() - this.retentionMs) / HOUR_MS)
    let over = this.rows.size - MAX_ROWS
    const cutoff = over > 0 ? Math.max(oldest, [...this.rows.values()].map((row) => row.hour).sort((a, b) => a - b)[over]!) : oldest
    for (const [id, row] of this.rows) {
      if (row.hour < cutoff) {
        this.rowsById.delete(id)
        over--
      }
    }
    for (const [id, row] of this.quotaById) if (row.hour < cutoff) this.quotaById.delete(id)
    if (this.lastRow !== undefined && this.lastRow.hour < cutoff) this.lastRow = undefined
    for (const [account, row] of this.lastQuota) if (row.hour < cutoff) this.lastQuota.delete(account)
    for (const hours of this.keyHours.values()) for (const hour of hours.keys()) if (hour < cutoff) hours.delete(hour)
    // Its hours may have gone with the oldest rows (past the rows' bound): each day total is summed again.
    for (const [key, latest] of this.keyDays) latest.tokens = this.dayTokens(this.keyHours.get(key) ?? new Map(), latest.day)
  }
}

function quotaId (hour: number, account: string): string {
  return `${hour}\0${account}`
}
