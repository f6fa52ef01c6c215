import type { AccountPool, Exhaustion } from '../pool/account-pool.js'
import type { AlertInput, WebhookAlerts } from './webhook-alerts.js'

interface RestEvent { account: string, kind: 'cooling' | 'disabled' | 'resting', until: number, source: string, family?: string }
interface RefreshEvent { account: string, result: 'ok' | 'transient_failure' | 'permanent_failure' }
interface OutageEvent { fault: string }

/**
 * Turns the pool's events into alerts. Brief rests for the upstream's trouble are left out: they
 * come back by themselves within minutes, and an outage has its own alert.
 */
export function alertOnPoolEvents (pool: AccountPool, alerts: WebhookAlerts): () => void {
  const who = (id: string): AlertInput['account'] => ({ id, email: pool.get(id)?.email ?? null })
  const onRest = (event: RestEvent): void => {
    if (event.kind === 'resting') return
    const account = pool.get(event.account)
    const until = new Date(event.until).toISOString()
    const reason = account?.disabledReason ?? null
    const family = event.family ?? null
    alerts.emit(event.kind === 'cooling'
      ? { type: 'account_cooling', account: who(event.account), message: `account ${account?.email ?? event.account} reached its usage limit${family === null ? '' : ` for ${family}`} until ${until}`, details: { until, source: event.source, family, reason } }
      : { type: 'account_disabled', account: who(event.account), message: `account ${account?.email ?? event.account} disabled until ${until}: ${reason ?? 'failing'}`, details: { until, source: event.source, reason } })
  }
  const onRefresh = (event: RefreshEvent): void => {
    if (event.result !== 'permanent_failure') return
    const account = pool.get(event.account)
    alerts.emit({ type: 'account_needs_login', account: who(event.account), message: `account ${account?.email ?? event.account} needs a new login`, details: { reason: account?.disabledReason ?? null } })
  }
  const onOutage = (event: OutageEvent): void => {
    alerts.emit({ type: 'outage_started', message: `upstream outage (${event.fault}): answers are passed on, no account rests`, details: { fault: event.fault } })
  }
  const onOutageEnd = (event: OutageEvent): void => {
    alerts.emit({ type: 'outage_ended', message: `upstream outage (${event.fault}) over`, details: { fault: event.fault } })
  }
  pool.on('rest', onRest)
  pool.on('refresh', onRefresh)
  pool.on('outage', onOutage)
  pool.on('outage-end', onOutageEnd)
  return () => {
    pool.off('rest', onRest)
    pool.off('refresh', onRefresh)
    pool.off('outage', onOutage)
    pool.off('outage-end', onOutageEnd)
  }
}

/** The alert for a request no account could serve. */
export function exhaustedAlert (exhaustion: Exhaustion): AlertInput {
  switch (exhaustion.kind) {
    case 'empty': return { type: 'pool_exhausted', message: 'no account can serve: the pool has no accounts', details: { why: 'empty' } }
    case 'needs_login': return { type: 'pool_exhausted', message: 'no account can serve: every account needs a new login', details: { why: 'needs_login' } }
    case 'waiting': return { type: 'pool_exhausted', message: 'no account can serve right now: all are resting briefly', details: { why: 'waiting', retry_at: new Date(exhaustion.retryAt).toISOString() } }
    case 'limited': return { type: 'pool_exhausted', message: `no account can serve: all are at their usage limits until ${new Date(exhaustion.resetsAt).toISOString()}`, details: { why: 'limited', resets_at: new Date(exhaustion.resetsAt).toISOString(), family: exhaustion.limit?.family ?? null } }
  }
}
