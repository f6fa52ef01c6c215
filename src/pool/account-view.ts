import { accountStatus, type Account, type QuotaWindow } from '../store/records.js'
import { maskProxyUrl, maskToken } from '../secrets.js'

/** What the management API and the dashboard show of an account: never a whole token. */
export interface AccountView {
  id: string
  email: string | null
  account_id: string
  plan: string | null
  token: string
  expire: string | null
  status: ReturnType<typeof accountStatus>
  current: boolean
  disabled_until: string | null
  disabled_source: string | null
  reason: string | null
  last_error: string | null
  last_error_at: string | null
  last_used: string | null
  last_refresh: string | null
  added_at: string
  requests: number
  /** The egress proxy, its password masked; null: direct. */
  proxy: string | null
  /** Model-scoped limits in force: the account serves every other model. */
  limits: Array<{ family: string, name: string, models: string[], until: string, source: string }>
  quota: {
    primary: WindowView | null
    secondary: WindowView | null
    plan_type: string | null
    active_limit: string | null
    credits: Record<string, string>
    observed_at: string
  } | null
  /** In a pool shared by several instances: the instance that last served with it. */
  last_served_by?: string | null
  /** In a shared pool: the instance refreshing its tokens now, if any. */
  refresh_lease_holder?: string | null
}

/** What a pool shared by several instances adds to the view. */
export interface ClusterView {
  leaseHolder: (id: string) => string | null
}

interface WindowView {
  used_percent: number | null
  window_minutes: number | null
  resets_at: string | null
}

/** A time as ISO text; null for none, and for a value no Date can hold (an answer must never fail over one field). */
function iso (ms: number | null): string | null {
  if (ms === null) return null
  const date = new Date(ms)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}

function windowView (window: QuotaWindow | null): WindowView | null {
  return window === null ? null : { used_percent: window.usedPercent, window_minutes: window.windowMinutes, resets_at: iso(window.resetsAt) }
}

export function toAccountView (account: Account, now: number, currentId: string | null, cluster?: ClusterView): AccountView {
  const view = baseView(account, now, currentId)
  if (cluster === undefined) return view
  return { ...view, last_served_by: account.lastServedBy ?? null, refresh_lease_holder: cluster.leaseHolder(account.id) }
}

function baseView (account: Account, now: number, currentId: string | null): AccountView {
  const status = accountStatus(account, now)
  const resting = status === 'cooling' || status === 'disabled' || status === 'resting'
  return {
    id: account.id,
    email: account.email,
    account_id: account.accountId,
    plan: account.plan,
    token: maskToken(account.tokens.accessToken),
    expire: iso(account.accessExpiresAt),
    status,
    current: account.id === currentId,
    disabled_until: resting ? iso(account.disabledUntil) : null,
    disabled_source: resting || status === 'needs_login' ? account.disabledSource : null,
    reason: resting || status === 'needs_login' ? account.disabledReason : null,
    last_error: account.lastError,
    last_error_at: iso(account.lastErrorAt),
    last_used: iso(account.lastUsedAt),
    last_refresh: iso(account.lastRefreshAt),
    added_at: new Date(account.addedAt).toISOString(),
    requests: account.requests,
    proxy: account.proxy === null ? null : maskProxyUrl(account.proxy),
    limits: account.modelLimits.filter((limit) => limit.until > now).map((limit) => ({ family: limit.family, name: limit.name, models: [...limit.models], until: new Date(limit.until).toISOString(), source: limit.source })),
    quota: account.quota === null
      ? null
      : {
          primary: windowView(account.quota.primary),
          secondary: windowView(account.quota.secondary),
          plan_type: account.quota.planType,
          active_limit: account.quota.activeLimit,
          credits: account.quota.credits,
          observed_at: new Date(account.quota.observedAt).toISOString()
        }
  }
}
