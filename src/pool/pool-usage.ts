import { isUsable, type Account, type QuotaWindow } from '../store/records.js'

/**
 * The pool's quota in the shape Codex's `/status` decodes from `{chatgpt_base_url}/wham/usage`
 * (protocol §5.7). Integers wherever Codex expects them: a float such as 42.5 fails its decoding
 * and `/status` shows nothing.
 */
export interface UsageWindowAnswer {
  used_percent: number
  limit_window_seconds: number
  reset_after_seconds: number
  reset_at: number
}

export interface PoolUsageAnswer {
  plan_type: string
  rate_limit: {
    allowed: boolean
    limit_reached: boolean
    primary_window: UsageWindowAnswer | null
    secondary_window: UsageWindowAnswer | null
  }
  credits: { has_credits: boolean, unlimited: boolean, balance: string }
  additional_rate_limits: unknown[]
}

/** Codex's windows when an account has not reported its own: 5 hours and a week. */
const DEFAULT_WINDOW_SECONDS = { primary: 5 * 3600, secondary: 7 * 24 * 3600 }

/**
 * What the user can still use across the pool, per window: the used percent is the pool's average
 * (an account that cannot serve counts as fully used, one never measured as unused), so 100 % means
 * nothing is left anywhere; `reset_at` is the earliest reset still to come, when usage next frees up.
 */
export function poolUsage (accounts: readonly Account[], now: number): PoolUsageAnswer {
  const usable = accounts.filter((account) => isUsable(account, now))
  return {
    plan_type: planOf(usable.length > 0 ? usable : accounts),
    rate_limit: {
      allowed: usable.length > 0,
      limit_reached: usable.length === 0,
      primary_window: windowOf(accounts, 'primary', now),
      secondary_window: windowOf(accounts, 'secondary', now)
    },
    credits: creditsOf(accounts),
    additional_rate_limits: []
  }
}

function windowOf (accounts: readonly Account[], which: 'primary' | 'secondary', now: number): UsageWindowAnswer | null {
  const windows = accounts.map((account) => account.quota?.[which] ?? null)
  if (accounts.length === 0 || windows.every((window) => window === null)) return null
  let used = 0
  accounts.forEach((account, i) => { used += isUsable(account, now) ? usedNow(windows[i]!, now) : 100 })
  const resets = windows.map((window) => window?.resetsAt ?? null).filter((at): at is number => at !== null && at > now)
  const restEnds = accounts.filter((account) => !isUsable(account, now) && account.disabledUntil !== null).map((account) => account.disabledUntil!)
  const next = Math.min(...resets, ...restEnds)
  const minutes = windows.find((window) => window?.windowMinutes != null)?.windowMinutes
  const resetAt = Number.isFinite(next) ? Math.ceil(next / 1000) : Math.ceil(now / 1000)
  return {
    used_percent: Math.min(100, Math.max(0, Math.round(used / accounts.length))),
    limit_window_seconds: Math.round(minutes != null ? minutes * 60 : DEFAULT_WINDOW_SECONDS[which]),
    reset_after_seconds: Math.max(0, resetAt - Math.ceil(now / 1000)),
    reset_at: resetAt
  }
}

/** A window whose reset has passed is unused until the backend says otherwise. */
function usedNow (window: QuotaWindow | null, now: number): number {
  if (window === null || window.usedPercent === null) return 0
  if (window.resetsAt !== null && window.resetsAt <= now) return 0
  return window.usedPercent
}

/** The plan names Codex's usage answer decodes (the backend's PlanType); any other fails `/status`. */
const CODEX_PLANS = new Set(['free', 'go', 'plus', 'pro', 'team', 'business', 'education', 'quorum', 'enterprise', 'edu'])

/**
 * The plan most of the accounts have (Codex shows it by name), among those Codex knows. Codex
 * decodes it as an enum without a catch-all, so a pool that knows no such plan says `plus` rather
 * than a word Codex would reject.
 */
function planOf (accounts: readonly Account[]): string {
  const counts = new Map<string, number>()
  for (const account of accounts) {
    const plan = (account.quota?.planType ?? account.plan)?.toLowerCase()
    if (plan !== undefined && CODEX_PLANS.has(plan)) counts.set(plan, (counts.get(plan) ?? 0) + 1)
  }
  let best = 'plus'
  let most = 0
  for (const [plan, count] of counts) {
    if (count > most) [best, most] = [plan, count]
  }
  return best
}

function flag (value: string | undefined): boolean {
  const text = value?.trim().toLowerCase()
  return text === 'true' || text === '1'
}

function creditsOf (accounts: readonly Account[]): PoolUsageAnswer['credits'] {
  let balance = 0
  let hasCredits = false
  let unlimited = false
  for (const account of accounts) {
    const credits = account.quota?.credits ?? {}
    hasCredits ||= flag(credits['has-credits'])
    unlimited ||= flag(credits.unlimited)
    const amount = Number(credits.balance)
    if (Number.isFinite(amount)) balance += amount
  }
  return { has_credits: hasCredits, unlimited, balance: String(balance) }
}
