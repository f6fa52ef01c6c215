/** The shape of one pooled account, as kept in memory and in codex_tokens.json. Times are epoch ms. */
export interface TokenSet {
  idToken: string
  accessToken: string
  refreshToken: string
}

/**
 * Why an account rests: `cooling` waits for a known quota reset, `disabled` for the cooldown after
 * failures that are its own fault, `resting` briefly for the upstream's or the issuer's trouble
 * (it is still tried, one request at a time, when no other account is left).
 */
export type DisableKind = 'cooling' | 'disabled' | 'resting'

/** A usage limit on some models only (a limit family other than `codex`): the account serves other models. */
export interface ModelLimit {
  /** The family id, as in `x-codex-active-limit` (e.g. `codex_bengalfox`). */
  family: string
  /** Its display name (the family's `-limit-name`). */
  name: string
  /** The models whose requests hit this limit. */
  models: string[]
  until: number
  source: string
}

export interface QuotaWindow {
  usedPercent: number | null
  windowMinutes: number | null
  resetsAt: number | null
}

export interface QuotaSnapshot {
  primary: QuotaWindow | null
  secondary: QuotaWindow | null
  planType: string | null
  activeLimit: string | null
  credits: Record<string, string>
  observedAt: number
}

export interface Account {
  id: string
  email: string | null
  accountId: string
  userId: string | null
  plan: string | null
  tokens: TokenSet
  /** Fingerprints of refresh tokens this account has spent (never the tokens): an import of one is refused. */
  spentRefreshTokens?: string[]
  /** Set on disk while a refresh is at the issuer: found at start, it says the process died mid-refresh. */
  refreshingSince?: number
  /** In a pool shared by several instances: the instance that last served with this account. */
  lastServedBy?: string
  /** When the access token dies (its `exp`), if known. */
  accessExpiresAt: number | null
  lastRefreshAt: number | null
  addedAt: number
  /** Set while the account rests (see DisableKind). */
  disabledUntil: number | null
  disabledKind: DisableKind | null
  disabledReason: string | null
  /** Which signal set `disabledUntil` (e.g. `body.resets_at`, `cooldown`). */
  disabledSource: string | null
  /** The refresh token was refused for good: only a new login helps. */
  needsLogin: boolean
  lastError: string | null
  lastErrorAt: number | null
  lastUsedAt: number | null
  requests: number
  quota: QuotaSnapshot | null
  /** Model-scoped limits; empty on the common path. */
  modelLimits: ModelLimit[]
  /** The egress proxy for this account's refreshes, probes and upstream calls (with credentials); null: direct. */
  proxy: string | null
}

export type AccountStatus = 'active' | DisableKind | 'needs_login'

export function accountStatus (account: Account, now: number): AccountStatus {
  if (account.needsLogin) return 'needs_login'
  if (account.disabledUntil !== null && account.disabledUntil > now) return account.disabledKind ?? 'disabled'
  return 'active'
}

export function isUsable (account: Account, now: number): boolean {
  return !account.needsLogin && (account.disabledUntil === null || account.disabledUntil <= now)
}

/** The model-scoped limit that keeps this account from serving `model` now, if any. */
export function modelLimitFor (account: Account, model: string | null, now: number): ModelLimit | null {
  if (model === null) return null
  for (const limit of account.modelLimits) {
    if (limit.until > now && limit.models.includes(model)) return limit
  }
  return null
}

/** A short rest for someone else's trouble: the account may still probe when nothing else is left. */
export function isBrieflyResting (account: Account, now: number): boolean {
  return !account.needsLogin && account.disabledKind === 'resting' && account.disabledUntil !== null && account.disabledUntil > now
}

/** A newly added account: usable, never used, nothing known of its quota yet. */
export function newAccount (o: Pick<Account, 'id' | 'email' | 'accountId' | 'userId' | 'plan' | 'tokens' | 'addedAt'>): Account {
  return {
    ...o,
    accessExpiresAt: null,
    lastRefreshAt: null,
    disabledUntil: null,
    disabledKind: null,
    disabledReason: null,
    disabledSource: null,
    needsLogin: false,
    lastError: null,
    lastErrorAt: null,
    lastUsedAt: null,
    requests: 0,
    quota: null,
    modelLimits: [],
    proxy: null
  }
}
