import { accountStatus } from '../store/records.js'
import type { AccountPool, PoolLogger } from './account-pool.js'

interface UsageWindow {
  used_percent?: unknown
}

interface UsageAnswer {
  rate_limit?: { limit_reached?: unknown, allowed?: unknown, primary_window?: UsageWindow | null, secondary_window?: UsageWindow | null }
}

/** Where the backend reports quota: `{chatgpt base}/wham/usage`, beside the Codex base (`…/backend-api/codex`). */
export function usageUrl (upstream: string): string {
  const url = new URL(upstream)
  url.pathname = url.pathname.replace(/\/+$/, '').replace(/\/codex$/, '') + '/wham/usage'
  return url.href
}

/** True when the usage answer says the account can work again. */
export function quotaAvailable (answer: UsageAnswer): boolean {
  const limits = answer.rate_limit
  if (limits === undefined || limits === null) return false
  if (limits.limit_reached === true || limits.allowed === false) return false
  for (const window of [limits.primary_window, limits.secondary_window]) {
    const used = window?.used_percent
    if (typeof used === 'number' && used >= 100) return false
  }
  return true
}

/**
 * Optional: asks the backend about each resting account's quota and lifts a cooldown whose
 * window has already reset (reset times are estimates; a weekly window may be granted early).
 * It only ever lifts: an account is never rested on a usage answer alone.
 */
export class UsageProbe {
  private timer: NodeJS.Timeout | null = null
  private running: Promise<number> | null = null

  /** `fetchVia` gives the fetch for an account's egress proxy (the global one for null). */
  constructor (private readonly pool: AccountPool, private readonly url: string, private readonly intervalMs: number, private readonly log?: PoolLogger, private readonly fetchVia: (proxy: string | null) => typeof fetch = () => fetch) {}

  start (): void {
    if (this.intervalMs <= 0 || this.timer !== null) return
    this.timer = setInterval(() => { void this.probeOnce() }, this.intervalMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    await this.running
  }

  /** One round over the resting accounts; resolves to how many were lifted. */
  probeOnce (): Promise<number> {
    this.running ??= this.probeResting().finally(() => { this.running = null })
    return this.running
  }

  private async probeResting (): Promise<number> {
    let lifted = 0
    for (const account of this.pool.list()) {
      const status = accountStatus(account, this.pool.now())
      if (status !== 'cooling' && status !== 'disabled') continue
      try {
        const response = await this.fetchVia(account.proxy)(this.url, {
          headers: { authorization: `Bearer ${account.tokens.accessToken}`, 'chatgpt-account-id': account.accountId, accept: 'application/json' },
          signal: AbortSignal.timeout(15_000)
        })
        if (response.status !== 200) {
          await response.body?.cancel()
          continue
        }
        if (quotaAvailable(await response.json() as UsageAnswer)) {
          this.log?.info({ account: account.id, was: account.disabledReason }, 'quota available again: cooldown lifted early')
          await this.pool.enable(account.id)
          lifted++
        }
      } catch (err) {
        this.log?.warn({ account: account.id, err: (err as Error).message }, 'usage probe failed')
      }
    }
    return lifted
  }
}
