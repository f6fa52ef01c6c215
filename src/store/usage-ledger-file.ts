import { readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from './atomic-file.js'
import {
  DAY_MS, HOUR_MS, addTotals, emptyTotals,
  type QuotaHistory, type QuotaSample, type UsageEntry, type UsageLedger, type UsageQuery, type UsageReport, type UsageTotals
} from './usage-ledger.js'

export const LEDGER_FILE = 'usage_ledger.json'
const FORMAT_VERSION = 1
/** A hard bound besides the retention: past it the oldest hours go first. */
const MAX_ROWS = 200_000

interface Row {
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

interface QuotaRow extends QuotaSample { hour: number }

/**
 * The file on disk: names once in `names`, rows as arrays of numbers pointing into it — a year of
 * hours for a few accounts, keys and models stays a few megabytes.
 *   rows:  [hour, account, key, model, requests, input, cachedInput, output, reasoning]
 *   quota: [hour, account, primary, secondary]
 * Hours are counted since the epoch.
 */
interface LedgerFile {
  version: number
  names: string[]
  rows: number[][]
  quota: Array<Array<number | null>>
}

export interface FileUsageLedgerOptions {
  retentionMs: number
  /** How often pending counts are written (they are also written on close). */
  flushMs?: number
  now?: () => number
  onWriteError?: (err: Error) => void
  /** The file could not be read: it was moved to `keptAt` and the ledger starts empty. */
  onUnreadable?: (keptAt: string, err: Error) => void
}

/**
 * The embedded ledger: counts are added up in memory as answers complete and written in the
 * background, atomically, to the auths dir. Rows older than the retention are dropped.
 */
export class FileUsageLedger implements UsageLedger {
  private readonly path: string
  private readonly rows = new Map<string, Row>()
  private readonly quota = new Map<string, QuotaRow>()
  /** Tokens per key per hour, so a key's limit check sums at most a day of numbers. */
  private readonly keyHours = new Map<string, Map<number, number>>()
  private dirty = false
  private timer: NodeJS.Timeout | null = null
  private writing: Promise<void> = Promise.resolve()
  private readonly now: () => number

  constructor (dir: string, private readonly opts: FileUsageLedgerOptions) {
    this.path = join(dir, LEDGER_FILE)
    this.now = opts.now ?? Date.now
  }

  async open (): Promise<void> {
    let text: string | null = null
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (text !== null) {
      try {
        this.load(JSON.parse(text) as LedgerFile)
      } catch (err) {
        // Counts are not worth refusing to serve over: keep the unreadable file aside and start afresh.
        const aside = `${this.path}.unreadable-${Date.now()}`
        await rename(this.path, aside)
        this.rows.clear()
        this.quota.clear()
        this.keyHours.clear()
        this.opts.onUnreadable?.(aside, err as Error)
      }
    }
    this.prune()
    this.timer = setInterval(() => { void this.flush() }, this.opts.flushMs ?? 15_000)
    this.timer.unref()
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    await this.flush()
  }

  record (at: number, entry: UsageEntry): void {
    const hour = Math.floor(at / HOUR_MS)
    const id = `${hour}\0${entry.account}\0${entry.key}\0${entry.model}`
    let row = this.rows.get(id)
    if (row === undefined) {
      row = { hour, account: entry.account, key: entry.key, model: entry.model, requests: 0, input: 0, cachedInput: 0, output: 0, reasoning: 0 }
      this.rows.set(id, row)
    }
    row.requests++
    row.input += entry.input
    row.cachedInput += entry.cachedInput
    row.output += entry.output
    row.reasoning += entry.reasoning
    this.countKey(entry.key, hour, entry.input + entry.output)
    this.dirty = true
  }

  recordQuota (at: number, sample: QuotaSample): void {
    const hour = Math.floor(at / HOUR_MS)
    this.quota.set(`${hour}\0${sample.account}`, { hour, ...sample })
    this.dirty = true
  }

  keyTokensSince (key: string, since: number): number {
    const hours = this.keyHours.get(key)
    if (hours === undefined) return 0
    const first = Math.floor(since / HOUR_MS)
    const last = Math.floor(this.now() / HOUR_MS)
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

  /** Writes the ledger if anything changed; one write at a time, each of the whole (small) file. */
  flush (): Promise<void> {
    this.writing = this.writing.then(async () => {
      if (!this.dirty) return
      this.dirty = false
      this.prune()
      try {
        await writeFileAtomic(this.path, JSON.stringify(this.serialize()), { mode: 0o600 })
      } catch (err) {
        this.dirty = true // try again on the next turn
        this.opts.onWriteError?.(err as Error)
      }
    })
    return this.writing
  }

  private countKey (key: string, hour: number, tokens: number): void {
    let hours = this.keyHours.get(key)
    if (hours === undefined) this.keyHours.set(key, hours = new Map())
    hours.set(hour, (hours.get(hour) ?? 0) + tokens)
  }

  private prune (): void {
    const oldest = Math.floor((this.now() - this.opts.retentionMs) / HOUR_MS)
    let over = this.rows.size - MAX_ROWS
    const cutoff = over > 0 ? Math.max(oldest, [...this.rows.values()].map((row) => row.hour).sort((a, b) => a - b)[over]!) : oldest
    for (const [id, row] of this.rows) {
      if (row.hour < cutoff) {
        this.rows.delete(id)
        over--
      }
    }
    for (const [id, row] of this.quota) if (row.hour < cutoff) this.quota.delete(id)
    for (const hours of this.keyHours.values()) for (const hour of hours.keys()) if (hour < cutoff) hours.delete(hour)
  }

  private serialize (): LedgerFile {
    const names: string[] = []
    const index = new Map<string, number>()
    const ref = (name: string): number => {
      let i = index.get(name)
      if (i === undefined) {
        i = names.push(name) - 1
        index.set(name, i)
      }
      return i
    }
    const rows = [...this.rows.values()].map((r) => [r.hour, ref(r.account), ref(r.key), ref(r.model), r.requests, r.input, r.cachedInput, r.output, r.reasoning])
    const quota = [...this.quota.values()].map((q) => [q.hour, ref(q.account), q.primary, q.secondary])
    return { version: FORMAT_VERSION, names, rows, quota }
  }

  private load (file: LedgerFile): void {
    if (file.version !== FORMAT_VERSION || !Array.isArray(file.names)) throw new Error(`${this.path} is not a usage ledger this version can read`)
    const name = (i: unknown): string => file.names[Number(i)] ?? '?'
    for (const [hour, account, key, model, requests, input, cachedInput, output, reasoning] of file.rows ?? []) {
      const row: Row = { hour: hour!, account: name(account), key: name(key), model: name(model), requests: requests!, input: input!, cachedInput: cachedInput!, output: output!, reasoning: reasoning! }
      this.rows.set(`${row.hour}\0${row.account}\0${row.key}\0${row.model}`, row)
      this.countKey(row.key, row.hour, row.input + row.output)
    }
    for (const [hour, account, primary, secondary] of file.quota ?? []) {
      this.quota.set(`${hour!}\0${name(account)}`, { hour: hour!, account: name(account), primary: primary ?? null, secondary: secondary ?? null })
    }
  }
}
