import type { Account } from '../store/records.js'

/** Codex refreshes a login whose last refresh is older than this, used or not. */
export const REFRESH_AGE_MS = 8 * 24 * 3_600_000

/**
 * Why a resting or idle account should be refreshed now, or null. A refresh token unused for long
 * may be expired by the issuer, so an account that sits unused (resting for days, or never
 * picked) is refreshed on Codex's own 8-day rule; and a resting account whose access token will
 * be dead when its rest ends gets a new one shortly before, so its first request does not wait.
 */
export function keepAliveReason (account: Account, now: number, marginMs: number): string | null {
  if (account.needsLogin) return null
  if (account.lastRefreshAt !== null && now - account.lastRefreshAt >= REFRESH_AGE_MS) return 'last refresh older than 8 days'
  const restEnds = account.disabledUntil
  if (restEnds !== null && restEnds > now && restEnds - now <= marginMs &&
      account.accessExpiresAt !== null && account.accessExpiresAt - restEnds < marginMs) {
    return 'its rest ends soon and its access token would be stale by then'
  }
  return null
}
