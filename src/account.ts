/** The shape of one pooled account, as kept in memory and in codex_tokens.json. Times are epoch ms. */
export interface TokenSet {
  idToken: string
  accessToken: string
  refreshToken: string
}

export type DisableKind = 'cooling' | 'disabled'

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
  /** When the access token dies (its `exp`), if known. */
  accessExpiresAt: number | null
  lastRefreshAt: number | null
  addedAt: number
  /** Set while the account rests: `cooling` waits for a known quota reset, `disabled` for the cooldown after errors. */
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
}

export type AccountStatus = 'active' | 'cooling' | 'disabled' | 'needs_login'

export function accountStatus (account: Account, now: number): AccountStatus {
  if (account.needsLogin) return 'needs_login'
  if (account.disabledUntil !== null && account.disabledUntil > now) return account.disabledKind ?? 'disabled'
  return 'active'
}

export function isUsable (account: Account, now: number): boolean {
  return !account.needsLogin && (account.disabledUntil === null || account.disabledUntil <= now)
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
    quota: null
  }
}
