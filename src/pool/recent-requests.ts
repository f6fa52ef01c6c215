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

/** The last requests, in a ring of fixed size: the newest replaces the oldest. */
export class RecentRequests {
  private readonly ring: Array<RecentRequest | undefined>
  private next = 0

  constructor (readonly capacity = 500) {
    this.ring = new Array<RecentRequest | undefined>(capacity)
  }

  add (entry: RecentRequest): void {
    this.ring[this.next] = entry
    this.next = (this.next + 1) % this.capacity
  }

  /** Newest first, at most `limit`. */
  list (limit = this.capacity): RecentRequest[] {
    const out: RecentRequest[] = []
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const entry = this.ring[(this.next - i + this.capacity) % this.capacity]
      if (entry === undefined) break
      out.push(entry)
    }
    return out
  }
}
