/**
 * The usage ledger's port: what every delivered answer cost, per account × key × model × hour, and
 * the accounts' quota windows over time. The embedded adapter keeps it in the auths dir
 * (`usage-ledger-file.ts`); another adapter (e.g. Redis) implements the same interface.
 */

/** Tokens of one answer, as its `usage` says. `output` includes `reasoning`, `input` includes `cachedInput`. */
export interface TokenUsage {
  input: number
  cachedInput: number
  output: number
  reasoning: number
}

export interface UsageEntry extends TokenUsage {
  account: string
  key: string
  model: string
}

export interface UsageTotals extends TokenUsage {
  requests: number
  /** input + output, the figure limits are counted in. */
  total: number
}

export type UsageGroup = 'account' | 'key' | 'model'
export type UsageBucket = 'hour' | 'day'

export interface UsageQuery {
  from: number
  to: number
  by: UsageGroup
  bucket: UsageBucket
}

export interface UsageReport {
  from: string
  to: string
  by: UsageGroup
  bucket: UsageBucket
  totals: UsageTotals
  /** Per group (an account id, a key name or a model): its totals and one point per bucket that saw use. */
  groups: Array<{ name: string, totals: UsageTotals, series: Array<UsageTotals & { at: string }> }>
}

/** The quota windows of one account at one time (percent used; null when unknown). */
export interface QuotaSample {
  account: string
  primary: number | null
  secondary: number | null
}

export interface QuotaHistory {
  from: string
  to: string
  accounts: Array<{ account: string, series: Array<{ at: string, primary: number | null, secondary: number | null }> }>
}

export interface UsageLedger {
  /** Counts one answer's usage at `at` (ms). Synchronous and cheap: the writing happens later. */
  record: (at: number, entry: UsageEntry) => void
  /** Keeps the latest quota reading of an account for the hour of `at`. */
  recordQuota: (at: number, sample: QuotaSample) => void
  /** Tokens (input + output) used with a key since `since` (ms, rounded down to its hour). */
  keyTokensSince: (key: string, since: number) => number
  query: (query: UsageQuery) => UsageReport
  quotaHistory: (from: number, to: number) => QuotaHistory
  open: () => Promise<void>
  /** Writes what is pending and stops the background writing. */
  close: () => Promise<void>
}

export const HOUR_MS = 3_600_000
export const DAY_MS = 24 * HOUR_MS

export function emptyTotals (): UsageTotals {
  return { requests: 0, input: 0, cachedInput: 0, output: 0, reasoning: 0, total: 0 }
}

export function addTotals (into: UsageTotals, from: TokenUsage & { requests: number }): void {
  into.requests += from.requests
  into.input += from.input
  into.cachedInput += from.cachedInput
  into.output += from.output
  into.reasoning += from.reasoning
  into.total += from.input + from.output
}
