import { createHmac } from 'node:crypto'

/** What an alert is about. `key_over_limit` is raised by whoever enforces per-key limits. */
export type AlertType =
  | 'account_cooling'
  | 'account_disabled'
  | 'account_needs_login'
  | 'pool_exhausted'
  | 'outage_started'
  | 'outage_ended'
  | 'key_over_limit'

export interface AlertInput {
  type: AlertType
  /** The account concerned, if any (never its tokens). */
  account?: { id: string, email: string | null }
  /** The client key concerned, by name (never its secret). */
  key?: string
  /** A sentence a person can act on. */
  message: string
  /** Further plain facts: times as ISO strings, reasons, sources. */
  details?: Record<string, string | number | boolean | null>
}

export interface AlertLogger {
  warn: (obj: object, msg?: string) => void
  debug: (obj: object, msg?: string) => void
}

export interface WebhookAlertsOptions {
  urls: readonly string[]
  /** Signs every body (HMAC-SHA256 over `timestamp.body`) when set. */
  secret: string | null
  log: AlertLogger
  /** Waits before the 2nd, 3rd… attempt; the last entry is the last retry. */
  retryDelaysMs?: readonly number[]
  /** One attempt gives up after this long (a receiver that hangs). */
  timeoutMs?: number
  /** Deliveries waiting (to be sent or retried) beyond this many are dropped, newest first. */
  maxQueued?: number
  /** Repeats of a throttled alert (same type, account and key) within this window are dropped. */
  throttleMs?: number
  now?: () => number
}

export const SIGNATURE_HEADER = 'x-codex-eq-signature'

const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000, 600_000]
const CONCURRENCY = 4
/** Alerts that can fire on every request: one per window is enough to wake someone up. */
const THROTTLED: ReadonlySet<AlertType> = new Set(['pool_exhausted', 'key_over_limit'])

interface Delivery {
  url: string
  body: string
  attempt: number
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp lets a receiver refuse replays. */
export function signBody (secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')
  return `t=${unixSeconds},v1=${mac}`
}

/** Where a webhook goes, for logs: its origin only (paths of chat webhooks are secrets). */
export function webhookOrigin (url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return 'webhook'
  }
}

/**
 * Posts alerts as JSON to the configured webhooks, in the background: `emit` only queues and returns,
 * so no request ever waits for a receiver. Failed deliveries are retried with growing delays; the
 * queue is bounded so a receiver that is down for days cannot grow the memory.
 */
export class WebhookAlerts {
  private readonly queue: Delivery[] = []
  private readonly retries = new Set<NodeJS.Timeout>()
  private readonly inFlight = new Set<AbortController>()
  private readonly lastThrottled = new Map<string, number>()
  private readonly retryDelaysMs: readonly number[]
  private readonly timeoutMs: number
  private readonly maxQueued: number
  private readonly throttleMs: number
  private readonly now: () => number
  private dropped = 0
  private closed = false

  constructor (private readonly opts: WebhookAlertsOptions) {
    this.retryDelaysMs = opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS
    this.timeoutMs = opts.timeoutMs ?? 10_000
    this.maxQueued = opts.maxQueued ?? 1000
    this.throttleMs = opts.throttleMs ?? 60_000
    this.now = opts.now ?? Date.now
  }

  get enabled (): boolean {
    return this.opts.urls.length > 0
  }

  /** Queues one alert for every webhook; never throws, never waits. */
  emit (input: AlertInput): void {
    if (!this.enabled || this.closed) return
    const now = this.now()
    if (THROTTLED.has(input.type)) {
      const key = `${input.type}\0${input.account?.id ?? ''}\0${input.key ?? ''}`
      const last = this.lastThrottled.get(key)
      if (last !== undefined && now - last < this.throttleMs) return
      this.lastThrottled.set(key, now)
      if (this.lastThrottled.size > 1000) this.lastThrottled.delete(this.lastThrottled.keys().next().value!)
    }
    const body = JSON.stringify({
      type: input.type,
      at: new Date(now).toISOString(),
      message: input.message,
      account: input.account ?? null,
      key: input.key ?? null,
      details: input.details ?? {}
    })
    for (const url of this.opts.urls) this.enqueue({ url, body, attempt: 0 })
  }

  /** Stops retrying and abandons what is in flight (called when the app closes). */
  close (): void {
    this.closed = true
    for (const timer of this.retries) clearTimeout(timer)
    this.retries.clear()
    for (const controller of this.inFlight) controller.abort()
    this.queue.length = 0
  }

  private enqueue (delivery: Delivery): void {
    if (this.queue.length + this.retries.size >= this.maxQueued) {
      // Logged on the first drop and then every 100th: a dead receiver must not flood the log either.
      if (this.dropped++ % 100 === 0) this.opts.log.warn({ dropped: this.dropped }, 'webhook queue full: alerts dropped')
      return
    }
    this.queue.push(delivery)
    this.pump()
  }

  private pump (): void {
    while (this.inFlight.size < CONCURRENCY && this.queue.length > 0) {
      void this.send(this.queue.shift()!)
    }
  }

  private async send (delivery: Delivery): Promise<void> {
    const controller = new AbortController()
    this.inFlight.add(controller)
    const timer = setTimeout(() => { controller.abort() }, this.timeoutMs)
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'codex-equilibrium' }
    if (this.opts.secret !== null) headers[SIGNATURE_HEADER] = signBody(this.opts.secret, delivery.body, Math.floor(this.now() / 1000))
    let failure: string | null = null
    try {
      const response = await fetch(delivery.url, { method: 'POST', headers, body: delivery.body, signal: controller.signal, redirect: 'manual' })
      await response.body?.cancel()
      if (response.status < 200 || response.status >= 300) failure = `status ${response.status}`
    } catch (err) {
      failure = controller.signal.aborted ? `no answer within ${this.timeoutMs} ms` : ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message
    } finally {
      clearTimeout(timer)
      this.inFlight.delete(controller)
    }
    if (failure !== null && !this.closed) this.retry(delivery, failure)
    else if (failure === null) this.opts.log.debug({ webhook: webhookOrigin(delivery.url), attempt: delivery.attempt + 1 }, 'alert delivered')
    this.pump()
  }

  private retry (delivery: Delivery, failure: string): void {
    const delay = this.retryDelaysMs[delivery.attempt]
    const webhook = webhookOrigin(delivery.url)
    if (delay === undefined) {
      this.opts.log.warn({ webhook, attempts: delivery.attempt + 1, err: failure }, 'alert not delivered: giving up')
      return
    }
    this.opts.log.warn({ webhook, attempt: delivery.attempt + 1, retryInMs: delay, err: failure }, 'alert not delivered: will retry')
    const timer = setTimeout(() => {
      this.retries.delete(timer)
      this.queue.push({ ...delivery, attempt: delivery.attempt + 1 })
      this.pump()
    }, delay)
    timer.unref()
    this.retries.add(timer)
  }
}
