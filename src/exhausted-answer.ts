import type { Account } from './account.js'

/**
 * The pool's own answer when no account can serve. A 429 `usage_limit_reached` with the earliest
 * reset makes the Codex CLI stop the turn and say when to try again (it would retry a 5xx);
 * without any reset to wait for (no accounts, or all need a login) a 503 says what to do.
 * The message says why the accounts rest: usage limits, or failures upstream.
 */
export interface ExhaustedAnswer {
  status: number
  headers: Record<string, string>
  body: { error: Record<string, unknown> }
}

export function exhaustedAnswer (resetsAt: number | null, now: number, accounts: readonly Account[]): ExhaustedAnswer {
  if (resetsAt === null) {
    const message = accounts.length === 0
      ? 'Codex Equilibrium has no accounts yet: add one on its dashboard or with `codex-eq login`'
      : 'No account of the pool can serve: every account needs a new login (see the dashboard)'
    return { status: 503, headers: {}, body: { error: { type: 'no_usable_account', message } } }
  }
  const seconds = Math.max(1, Math.ceil((resetsAt - now) / 1000))
  const back = new Date(resetsAt).toISOString()
  const failed = accounts.filter((account) => account.disabledKind === 'disabled' && account.disabledUntil !== null && account.disabledUntil > now)
  const limited = accounts.some((account) => account.disabledKind === 'cooling' && account.disabledUntil !== null && account.disabledUntil > now)
  const message = limited
    ? failed.length === 0
      ? `Every account of the pool has reached its usage limit; the first one is back at ${back}`
      : `Every account of the pool rests (usage limits, or failures upstream); the first one is back at ${back}`
    : `No account of the pool can serve: every account failed upstream (last: ${failed.at(-1)?.disabledReason ?? 'an error'}) and rests; the first one is back at ${back}`
  return {
    status: 429,
    headers: { 'retry-after': String(seconds) },
    body: {
      error: {
        type: 'usage_limit_reached',
        message,
        resets_at: Math.ceil(resetsAt / 1000),
        resets_in_seconds: seconds
      }
    }
  }
}
