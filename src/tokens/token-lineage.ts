import { tokenFingerprint } from '../store/fingerprint.js'
import { decodeJwtPayload } from './jwt.js'
import type { TokenSet } from '../store/records.js'

/** How many spent refresh tokens an account remembers (as hashes): enough to recognise a restored backup. */
export const SPENT_MEMORY = 8

// Stores compare fingerprints too (a shared store's compare-and-set), so the function lives with them.
export { tokenFingerprint } from '../store/fingerprint.js'

export interface HeldTokens {
  tokens: TokenSet
  lastRefreshAt: number | null
  /** Fingerprints of refresh tokens this account has already spent, newest last. */
  spentRefreshTokens?: string[]
}

export type ImportVerdict =
  | { kind: 'identical' }
  | { kind: 'older', why: string }
  | { kind: 'newer' }

/**
 * Whether an imported token set may replace the one held. Refresh tokens are single use: putting
 * back one the pool has already rotated (a retried import, a restored backup) brings back a dead
 * token and loses the live one. Older means: a refresh token already spent or already held, or an
 * access token issued before the held one, or (without `iat`s) an older `last_refresh`.
 */
export function compareImport (held: HeldTokens, incoming: { tokens: TokenSet, lastRefreshAt: number | null }): ImportVerdict {
  const a = held.tokens
  const b = incoming.tokens
  if (a.refreshToken === b.refreshToken && a.accessToken === b.accessToken && a.idToken === b.idToken) return { kind: 'identical' }
  const heldIat = issuedAt(a.accessToken)
  const incomingIat = issuedAt(b.accessToken)
  if ((held.spentRefreshTokens ?? []).includes(tokenFingerprint(b.refreshToken))) {
    return { kind: 'older', why: 'its refresh token was already used by the pool (it has rotated since)' }
  }
  if (a.refreshToken === b.refreshToken && !(heldIat !== null && incomingIat !== null && incomingIat > heldIat)) {
    return { kind: 'older', why: 'it holds the same refresh token as the pool, with no newer access token' }
  }
  if (heldIat !== null && incomingIat !== null) {
    if (incomingIat < heldIat) return { kind: 'older', why: `its access token was issued at ${iso(incomingIat)}, before the pool's (${iso(heldIat)})` }
    return { kind: 'newer' }
  }
  if (held.lastRefreshAt !== null && incoming.lastRefreshAt !== null && incoming.lastRefreshAt < held.lastRefreshAt) {
    return { kind: 'older', why: `its last_refresh (${iso(incoming.lastRefreshAt)}) is before the pool's (${iso(held.lastRefreshAt)})` }
  }
  return { kind: 'newer' }
}

/** Remembers `refreshToken` as spent, keeping the newest few. */
export function rememberSpent (spent: string[] | undefined, refreshToken: string): string[] {
  return [...(spent ?? []).filter((f) => f !== tokenFingerprint(refreshToken)), tokenFingerprint(refreshToken)].slice(-SPENT_MEMORY)
}

function issuedAt (jwt: string): number | null {
  const iat = decodeJwtPayload(jwt)?.iat
  return typeof iat === 'number' && Number.isFinite(iat) ? iat * 1000 : null
}

function iso (ms: number): string {
  return new Date(ms).toISOString()
}
