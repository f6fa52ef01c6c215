import { EventEmitter } from 'node:events'
import type { LoginError } from './login-error.js'

export type LoginStatus = 'pending' | 'complete' | 'failed' | 'expired'

/** What a poller sees of one login. `result` is set when complete, `error` when failed or expired. */
export interface LoginState<R> {
  status: LoginStatus
  result?: R
  error?: string
}

interface Entry<R> extends LoginState<R> {
  expiresAt: number
  settledAt: number | null
}

/** Finished logins are kept this long so that a dashboard polling for them still sees how they ended. */
const KEEP_SETTLED_MS = 60 * 60_000

/**
 * The outcome of each login by its public id (never the OAuth state, which must stay secret).
 * A pending login past its expiry reads as expired even before its timer has settled it.
 */
export class LoginRecords<R> {
  private readonly entries = new Map<string, Entry<R>>()
  private readonly settled = new EventEmitter()

  constructor (private readonly now: () => number, private readonly onSettled?: (id: string, state: LoginState<R>) => void) {}

  add (id: string, expiresAt: number): void {
    this.prune()
    this.entries.set(id, { status: 'pending', expiresAt, settledAt: null })
  }

  get (id: string): LoginState<R> | undefined {
    const entry = this.entries.get(id)
    if (entry === undefined) return undefined
    if (entry.status === 'pending' && entry.expiresAt <= this.now()) return { status: 'expired', error: 'the login expired before it was finished' }
    return stateOf(entry)
  }

  /** Records how a pending login ended; a login that already ended keeps its first outcome. */
  complete (id: string, result: R): void {
    this.settle(id, { result })
  }

  /** Records a failure; a login that ran out of time reads as expired. */
  fail (id: string, error: LoginError): void {
    this.settle(id, { status: error.kind === 'login_expired' ? 'expired' : 'failed', error: error.message })
  }

  private settle (id: string, outcome: { result: R } | { status: 'failed' | 'expired', error: string }): void {
    const entry = this.entries.get(id)
    if (entry === undefined || entry.status !== 'pending') return
    if ('result' in outcome) {
      entry.status = 'complete'
      entry.result = outcome.result
    } else {
      entry.status = outcome.status
      entry.error = outcome.error
    }
    entry.settledAt = this.now()
    this.onSettled?.(id, stateOf(entry))
    this.settled.emit(id, stateOf(entry))
  }

  /** Resolves once the login has ended (at once if it already has). */
  wait (id: string): Promise<LoginState<R>> {
    const entry = this.entries.get(id)
    if (entry === undefined) return Promise.reject(new Error(`no login ${id}`))
    if (entry.status !== 'pending') return Promise.resolve(stateOf(entry))
    return new Promise((resolve) => this.settled.once(id, resolve))
  }

  private prune (): void {
    const now = this.now()
    for (const [id, entry] of this.entries) {
      if (entry.settledAt !== null && entry.settledAt + KEEP_SETTLED_MS <= now) this.entries.delete(id)
    }
  }
}

function stateOf<R> (entry: Entry<R>): LoginState<R> {
  return {
    status: entry.status,
    ...(entry.result !== undefined ? { result: entry.result } : {}),
    ...(entry.error !== undefined ? { error: entry.error } : {})
  }
}
