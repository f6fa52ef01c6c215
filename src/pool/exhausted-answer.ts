import type { Account } from '../store/records.js'
import type { Exhaustion } from './account-pool.js'
import { familyPrefix } from './failover-policy.js'
import type { Outage } from './upstream-trouble.js'

/**
 * The pool's own answers, shaped by how the Codex CLI reacts to each (protocol §5.2):
 * - no account can ever serve (none, or all need a login): Codex shows a 400 `text/plain` body at
 *   once and verbatim, where it would retry a 5xx for ~26 s; other clients get a JSON 503;
 * - usage limits: 429 `usage_limit_reached` with the earliest reset (Codex stops and says when),
 *   with the limit family's headers when it is one model's limit;
 * - upstream or issuer trouble: a 5xx, which Codex retries by itself — never a usage limit.
 */
export interface PoolAnswer {
  status: number
  headers: Record<string, string>
  body: string | { error: Record<string, unknown> }
}

export interface AskingClient {
  /** The Codex CLI (it names itself in `originator` / `user-agent`). */
  codex: boolean
  /** How the client reaches this server, for the hint, e.g. `http://127.0.0.1:1456`. */
  serverUrl: string
}

/** Codex sends `originator: codex_exec` (or `codex_cli_rs`…) and a `codex_…` user agent. */
export function isCodexClient (headers: Record<string, string | string[] | undefined>): boolean {
  const originator = headers.originator
  const agent = headers['user-agent']
  return (typeof originator === 'string' && originator.startsWith('codex')) || (typeof agent === 'string' && agent.startsWith('codex'))
}

export function exhaustedAnswer (exhaustion: Exhaustion, now: number, accounts: readonly Account[], client: AskingClient): PoolAnswer {
  switch (exhaustion.kind) {
    case 'empty':
    case 'needs_login': {
      const why = exhaustion.kind === 'empty' ? 'it has no accounts yet' : 'every account needs a new login'
      const message = `Codex Equilibrium cannot serve: ${why}. Sign one in with \`codex-eq login --server ${client.serverUrl}\` or on the dashboard (${client.serverUrl}/).`
      if (client.codex) return { status: 400, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: message }
      return { status: 503, headers: {}, body: { error: { type: 'no_usable_account', code: 'no_usable_account', message } } }
    }
    case 'waiting': {
      const seconds = secondsUntil(exhaustion.retryAt, now)
      const message = `Every account of the pool waits for the upstream or the sign-in service to recover; retry in ${seconds} s`
      return { status: 503, headers: { 'retry-after': String(seconds) }, body: { error: { type: 'upstream_unavailable', code: 'upstream_unavailable', message } } }
    }
    case 'limited':
      return limitedAnswer(exhaustion, now, accounts)
  }
}

function limitedAnswer (exhaustion: Extract<Exhaustion, { kind: 'limited' }>, now: number, accounts: readonly Account[]): PoolAnswer {
  const { resetsAt, limit } = exhaustion
  const seconds = secondsUntil(resetsAt, now)
  const back = new Date(resetsAt).toISOString()
  const headers: Record<string, string> = { 'retry-after': String(seconds) }
  let message: string
  if (limit !== null) {
    // Codex reads the family's headers to say "You've hit your usage limit for {name}. Switch to another model…".
    const prefix = familyPrefix(limit.family)
    Object.assign(headers, {
      'x-codex-active-limit': limit.family,
      [`${prefix}-limit-name`]: limit.name,
      [`${prefix}-primary-used-percent`]: '100',
      [`${prefix}-primary-reset-at`]: String(Math.ceil(resetsAt / 1000))
    })
    message = `Every account of the pool has reached its usage limit for ${limit.name}; the first one is back at ${back}. Other models are still served.`
  } else {
    const resting = (kind: string): Account[] => accounts.filter((account) => account.disabledKind === kind && account.disabledUntil !== null && account.disabledUntil > now)
    const failed = resting('disabled')
    const limited = resting('cooling').length > 0
    message = limited
      ? failed.length === 0
        ? `Every account of the pool has reached its usage limit; the first one is back at ${back}`
        : `Every account of the pool rests (usage limits, or failures of the account); the first one is back at ${back}`
      : `No account of the pool can serve: every account failed (last: ${failed.at(-1)?.disabledReason ?? 'an error'}) and rests; the first one is back at ${back}`
  }
  return {
    status: 429,
    headers,
    body: { error: { type: 'usage_limit_reached', message, resets_at: Math.ceil(resetsAt / 1000), resets_in_seconds: seconds } }
  }
}

/**
 * Whether the upstream's failure came inside a 2xx stream (a `response.failed`, e.g. an overload,
 * before any content). It is then answered with the pool's own 5xx (`outageAnswer`), not passed on:
 * Codex ends a turn at once on an in-stream overload, but retries a 503.
 */
export function failedInsideStream (failure: Omit<Outage, 'since'>): boolean {
  return failure.status !== null && failure.status < 400
}

/**
 * The upstream's failure repeated to a request that did not reach it (a probe is out during an
 * outage): its own status and body when it answered, else 502 (unreachable) or 504 (timed out).
 */
export function outageAnswer (failure: Omit<Outage, 'since'>): PoolAnswer {
  if (failure.status !== null && failure.status >= 500 && failure.errorBody !== null && failure.errorBody !== '') {
    const json = failure.errorBody.trimStart().startsWith('{')
    return { status: failure.status, headers: { 'content-type': json ? 'application/json' : 'text/plain; charset=utf-8' }, body: failure.errorBody }
  }
  const status = failure.fault === 'timeout' ? 504 : failure.fault === 'overloaded' ? 503 : failure.status !== null && failure.status >= 500 ? failure.status : 502
  const code = failure.fault === 'overloaded' ? 'server_is_overloaded' : 'upstream_unavailable'
  return { status, headers: {}, body: { error: { type: 'upstream_unavailable', code, message: `The Codex backend is failing (${failure.reason}); retry shortly` } } }
}

function secondsUntil (at: number, now: number): number {
  return Math.max(1, Math.ceil((at - now) / 1000))
}
