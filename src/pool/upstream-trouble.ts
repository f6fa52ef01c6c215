/**
 * Upstream trouble is nobody's account's fault. One account failing with a 5xx, an overload, a
 * refused connection or a timeout rests only briefly (doubling while it repeats); the same kind of
 * failure on a second account within a short window is an outage: the pool stops walking the
 * accounts for it, rests nobody, and passes the upstream's answer on — the Codex CLI retries 5xx
 * by itself — while one request at a time probes whether the upstream is back.
 */
export interface Outage {
  since: number
  /** The kind of failure, e.g. `http_502`, `overloaded`, `timeout`, `unreachable`. */
  fault: string
  reason: string
  /** The last failing answer, to repeat to requests that arrive while a probe is out. */
  status: number | null
  errorBody: string | null
}

export interface TroubleOptions {
  /** Two accounts failing the same way within this window make an outage. */
  outageWindowMs: number
  /** The first brief rest of an account after an upstream failure; doubles while it repeats. */
  restStartMs: number
  restMaxMs: number
}

export class UpstreamTrouble {
  private readonly recent = new Map<string, { at: number, fault: string }>()
  private readonly restMs = new Map<string, number>()
  private outage: Outage | null = null
  /** An outage's probe is out: other requests get the outage's answer at once. */
  probing = false

  constructor (private readonly opts: TroubleOptions) {}

  get current (): Outage | null {
    return this.outage
  }

  /**
   * Records an upstream failure of one account. Returns the outage it starts (or continues), or
   * null when it is this account's trouble alone so far.
   */
  report (accountId: string, failure: Omit<Outage, 'since'>, now: number): { outage: Outage, started: boolean } | null {
    if (this.outage !== null) {
      Object.assign(this.outage, failure)
      return { outage: this.outage, started: false }
    }
    let sameElsewhere = false
    for (const [other, seen] of this.recent) {
      if (now - seen.at > this.opts.outageWindowMs) this.recent.delete(other)
      else if (other !== accountId && seen.fault === failure.fault) sameElsewhere = true
    }
    this.recent.set(accountId, { at: now, fault: failure.fault })
    if (!sameElsewhere) return null
    this.outage = { since: now, ...failure }
    this.recent.clear()
    return { outage: this.outage, started: true }
  }

  /** The upstream answered for real: the outage (if any) is over. Returns the one that ended. */
  end (): Outage | null {
    const ended = this.outage
    this.outage = null
    return ended
  }

  /** How long the account's next brief rest lasts: doubling from the start, capped. */
  nextRestMs (accountId: string): number {
    const previous = this.restMs.get(accountId)
    const ms = previous === undefined ? this.opts.restStartMs : Math.min(previous * 2, this.opts.restMaxMs)
    this.restMs.set(accountId, ms)
    return ms
  }

  /** The account served: its next trouble starts from the shortest rest again. */
  recovered (accountId: string): void {
    this.restMs.delete(accountId)
    this.recent.delete(accountId)
  }

  forget (accountId: string): void {
    this.recovered(accountId)
  }
}
