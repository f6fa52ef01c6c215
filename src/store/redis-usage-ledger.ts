import type { Redis } from 'ioredis'
import { HOUR_MS, type QuotaSample, type UsageEntry, type UsageLedger } from './usage-ledger.js'
import { UsageTally, type QuotaRow, type Row } from './usage-tally.js'

/** What one instance added to the ledger since its last write, as it tells the others. */
export interface UsageDelta {
  rows: Row[]
  quota: QuotaRow[]
}

export interface RedisUsageLedgerOptions {
  prefix: string
  retentionMs: number
  now: () => number
  /** Sends a written delta to the other instances. */
  announce: (delta: UsageDelta) => void
  /** How often pending counts are written (default 1 s; also on close). */
  flushMs?: number
  onWriteError?: (err: Error) => void
}

const METRICS = ['requests', 'input', 'cachedInput', 'output', 'reasoning'] as const

/**
 * The usage ledger of a pool shared by several instances: each instance answers from its counts in
 * memory (a key's daily limit is checked without a round trip), adds its own answers to Redis in
 * batches (HINCRBY per hour and row, so instances add up rather than overwrite), and takes the
 * others' batches from their announcements. Hours older than the retention expire in Redis.
 */
export class RedisUsageLedger extends UsageTally implements UsageLedger {
  private pending = new Map<string, Row>()
  private pendingQuota = new Map<string, QuotaRow>()
  private timer: NodeJS.Timeout | null = null
  private writing: Promise<void> = Promise.resolve()

  constructor (private readonly redis: Redis, private readonly opts: RedisUsageLedgerOptions) {
    super(opts.retentionMs, opts.now)
  }

  protected changed (): void {}

  private hourKey (kind: 'usage' | 'quota', hour: number): string {
    return `${this.opts.prefix}${kind}:${hour}`
  }

  async open (): Promise<void> {
    const last = Math.floor(this.now() / HOUR_MS)
    const first = Math.floor((this.now() - this.retentionMs) / HOUR_MS)
    const pipeline = this.redis.pipeline()
    for (let hour = first; hour <= last; hour++) {
      pipeline.hgetall(this.hourKey('usage', hour))
      pipeline.hgetall(this.hourKey('quota', hour))
    }
    const results = (await pipeline.exec()) ?? []
    for (let hour = first, i = 0; hour <= last; hour++, i += 2) {
      const usage = (results[i]?.[1] ?? {}) as Record<string, string>
      const rows = new Map<string, Row>()
      for (const [field, value] of Object.entries(usage)) {
        const [account, key, model, metric] = field.split('\0') as [string, string, string, typeof METRICS[number]]
        const id = `${account}\0${key}\0${model}`
        let row = rows.get(id)
        if (row === undefined) rows.set(id, row = { hour, account, key, model, requests: 0, input: 0, cachedInput: 0, output: 0, reasoning: 0 })
        if (METRICS.includes(metric)) row[metric] = Number(value)
      }
      for (const row of rows.values()) this.addRow(row)
      const quota = (results[i + 1]?.[1] ?? {}) as Record<string, string>
      for (const [account, text] of Object.entries(quota)) {
        const sample = JSON.parse(text) as { primary: number | null, secondary: number | null }
        this.keepQuota({ hour, account, primary: sample.primary, secondary: sample.secondary })
      }
    }
    this.timer = setInterval(() => { void this.flush() }, this.opts.flushMs ?? 1_000)
    this.timer.unref()
  }

  override record (at: number, entry: UsageEntry): void {
    const delta: Row = { hour: Math.floor(at / HOUR_MS), account: entry.account, key: entry.key, model: entry.model, requests: 1, input: entry.input, cachedInput: entry.cachedInput, output: entry.output, reasoning: entry.reasoning }
    this.addRow(delta)
    this.pend(delta)
  }

  override recordQuota (at: number, sample: QuotaSample): boolean {
    if (!super.recordQuota(at, sample)) return false
    const hour = Math.floor(at / HOUR_MS)
    this.pendingQuota.set(`${hour}\0${sample.account}`, { hour, account: sample.account, primary: sample.primary, secondary: sample.secondary })
    return true
  }

  /** Another instance's written batch. */
  apply (delta: UsageDelta): void {
    for (const row of delta.rows) this.addRow(row)
    for (const row of delta.quota) this.keepQuota(row)
  }

  private pend (delta: Row): void {
    const id = `${delta.hour}\0${delta.account}\0${delta.key}\0${delta.model}`
    const row = this.pending.get(id)
    if (row === undefined) {
      this.pending.set(id, { ...delta })
      return
    }
    for (const metric of METRICS) row[metric] += delta[metric]
  }

  /** Writes the pending counts in one transaction; kept for the next turn when Redis is away. */
  flush (): Promise<void> {
    this.writing = this.writing.then(async () => {
      if (this.pending.size === 0 && this.pendingQuota.size === 0) return
      const rows = [...this.pending.values()]
      const quota = [...this.pendingQuota.values()]
      this.pending = new Map()
      this.pendingQuota = new Map()
      const multi = this.redis.multi()
      for (const row of rows) {
        const key = this.hourKey('usage', row.hour)
        for (const metric of METRICS) if (row[metric] !== 0) multi.hincrby(key, `${row.account}\0${row.key}\0${row.model}\0${metric}`, row[metric])
        multi.pexpireat(key, (row.hour + 1) * HOUR_MS + this.retentionMs)
      }
      for (const sample of quota) {
        const key = this.hourKey('quota', sample.hour)
        multi.hset(key, sample.account, JSON.stringify({ primary: sample.primary, secondary: sample.secondary }))
        multi.pexpireat(key, (sample.hour + 1) * HOUR_MS + this.retentionMs)
      }
      try {
        await multi.exec()
      } catch (err) {
        for (const row of rows) this.pend(row)
        for (const sample of quota) if (!this.pendingQuota.has(`${sample.hour}\0${sample.account}`)) this.pendingQuota.set(`${sample.hour}\0${sample.account}`, sample)
        this.opts.onWriteError?.(err as Error)
        return
      }
      this.opts.announce({ rows, quota })
    })
    return this.writing
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    await this.flush()
  }
}
