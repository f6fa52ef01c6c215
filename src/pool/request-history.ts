/** One finished `/v1` request as the dashboard lists it: never a body, a header or a secret. */
export interface RecentRequest {
  at: string
  key: string
  account: string | null
  model: string | null
  status: number
  attempts: number
  /** input + output tokens, when the answer said. */
  tokens: number | null
  ms: number
}

/** Requests and failovers of one hour: requests by status class (2xx, 4xx, 429, 5xx), failovers by cause. */
export interface ActivityHour {
  at: string
  requests: Record<string, number>
  failovers: Record<string, number>
}

const HOUR_MS = 3_600_000

/** A request as kept: its time in ms, written out only when the list is asked for (most never are). */
export type FinishedRequest = Omit<RecentRequest, 'at'> & { at: number }

/** A request as its path knows it when it ends: the answer's usage when it told it (the model that answered and the counts). */
export interface AnsweredRequest {
  at: number
  key: string
  account: string | null
  status: number
  attempts: number
  usage: { model: string | null, input: number, output: number } | null
  ms: number
}

/**
 * What happened lately, in memory only: the last requests in a ring of fixed size (the newest
 * replaces the oldest), and per hour how many requests ended how and how many failovers had which
 * cause, for the last `hours` hours. Both are bounded, whatever the traffic.
 */
export class RequestHistory {
  private readonly ring: Array<FinishedRequest | undefined>
  private next = 0
  private readonly activity = new Map<number, { requests: Record<string, number>, failovers: Record<string, number> }>()

  constructor (readonly capacity = 500, private readonly hours = 48) {
    this.ring = new Array<FinishedRequest | undefined>(capacity)
  }

  add (entry: FinishedRequest): void {
    this.ring[this.next] = entry
    this.next = (this.next + 1) % this.capacity
    const status = entry.status === 429 ? '429' : `${Math.floor(entry.status / 100)}xx`
    const counts = this.hour(entry.at).requests
    counts[status] = (counts[status] ?? 0) + 1
  }

  /** A request answered over any path (pass-through, translated, a WebSocket turn). */
  answered (request: AnsweredRequest): void {
    const { usage } = request
    this.add({ at: request.at, key: request.key, account: request.account, model: usage?.model ?? null, status: request.status, attempts: request.attempts, tokens: usage === null ? null : usage.input + usage.output, ms: request.ms })
  }

  failover (at: number, cause: string): void {
    const counts = this.hour(at).failovers
    counts[cause] = (counts[cause] ?? 0) + 1
  }

  /** Newest first, at most `limit`. */
  list (limit = this.capacity): RecentRequest[] {
    const out: RecentRequest[] = []
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const entry = this.ring[(this.next - i + this.capacity) % this.capacity]
      if (entry === undefined) break
      out.push({ ...entry, at: new Date(entry.at).toISOString() })
    }
    return out
  }

  /** The hours that saw anything, oldest first. */
  hourly (): ActivityHour[] {
    return [...this.activity.entries()].sort((a, b) => a[0] - b[0]).map(([hour, counts]) => ({ at: new Date(hour * HOUR_MS).toISOString(), ...counts }))
  }

  private hour (at: number): { requests: Record<string, number>, failovers: Record<string, number> } {
    const hour = Math.floor(at / HOUR_MS)
    let counts = this.activity.get(hour)
    if (counts === undefined) {
      this.activity.set(hour, counts = { requests: {}, failovers: {} })
      for (const old of this.activity.keys()) if (old <= hour - this.hours) this.activity.delete(old)
    }
    return counts
  }
}
