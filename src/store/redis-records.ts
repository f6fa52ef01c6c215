import type { Account } from './records.js'
import type { SpendingMarker, StoredTokens } from './port.js'
import { tokenFingerprint } from './fingerprint.js'

/**
 * One account is one Redis hash, split by who changes what: `meta` (identity, proxy), `tokens`
 * (written only by compare-and-set on `fp`, the refresh token's fingerprint), `spending` (the
 * marker of a refresh at the issuer), `state` (rests, needs login, errors), `requests` (a counter
 * every instance increments) and `stats` (last use, quota, last server). A part changed by one
 * instance never overwrites another part changed by another.
 */
export interface AccountParts {
  meta: string
  tokens: string
  fp: string
  state: string
  stats: string
  requests: number
}

export function partsOf (account: Account): AccountParts {
  return {
    meta: JSON.stringify({ id: account.id, email: account.email, accountId: account.accountId, userId: account.userId, plan: account.plan, addedAt: account.addedAt, proxy: account.proxy }),
    tokens: JSON.stringify({ tokens: account.tokens, accessExpiresAt: account.accessExpiresAt, lastRefreshAt: account.lastRefreshAt, spentRefreshTokens: account.spentRefreshTokens }),
    fp: tokenFingerprint(account.tokens.refreshToken),
    state: JSON.stringify({ disabledUntil: account.disabledUntil, disabledKind: account.disabledKind, disabledReason: account.disabledReason, disabledSource: account.disabledSource, needsLogin: account.needsLogin, lastError: account.lastError, lastErrorAt: account.lastErrorAt, modelLimits: account.modelLimits }),
    stats: JSON.stringify({ lastUsedAt: account.lastUsedAt, quota: account.quota, lastServedBy: account.lastServedBy ?? null }),
    requests: account.requests
  }
}

/** The hash's fields as one raw account record (to be checked like a token file's), or null when a part is missing. */
export function rawAccount (hash: Record<string, string>): Record<string, unknown> | null {
  if (hash.meta === undefined || hash.tokens === undefined) return null
  const parse = (text: string | undefined): Record<string, unknown> => {
    if (text === undefined) return {}
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null ? value as Record<string, unknown> : {}
  }
  const requests = hash.requests === undefined ? 0 : Number(hash.requests)
  return { ...parse(hash.meta), ...parse(hash.tokens), ...parse(hash.state), ...parse(hash.stats), requests }
}

export function storedTokens (tokensJson: string, spendingJson: string | null): StoredTokens {
  const raw = JSON.parse(tokensJson) as Pick<Account, 'tokens' | 'accessExpiresAt' | 'lastRefreshAt'> & { spentRefreshTokens?: string[] }
  return {
    tokens: raw.tokens,
    accessExpiresAt: raw.accessExpiresAt ?? null,
    lastRefreshAt: raw.lastRefreshAt ?? null,
    spentRefreshTokens: raw.spentRefreshTokens ?? [],
    spending: spendingJson === null ? null : JSON.parse(spendingJson) as SpendingMarker
  }
}
