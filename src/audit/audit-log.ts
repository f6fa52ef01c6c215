/** What was done. `key_create` / `key_delete` belong to client-key management. */
export type AuditAction =
  | 'account_import'
  | 'account_delete'
  | 'account_enable'
  | 'account_select'
  | 'account_refresh'
  | 'account_update'
  | 'login_completed'
  | 'key_create'
  | 'key_delete'

/** Who asked: with the admin token, or from a machine trusted without one (loopback only), and from which address. */
export interface AuditActor {
  via: 'admin_token' | 'local'
  remote: string
}

export interface AuditInput {
  action: AuditAction
  actor: AuditActor
  account?: { id: string, email: string | null }
  /** A client key, by name (never its secret). */
  key?: string
  /** How it went when it can fail (`ok`, or a short reason); further plain facts. */
  details?: Record<string, string | number | boolean | null>
}

export interface AuditEntry extends AuditInput {
  at: string
}

export interface AuditLogger {
  info: (obj: object, msg?: string) => void
}

/**
 * The record of management actions: one log line each (the lasting record, wherever the logs go)
 * and the last entries in memory for `GET /audit` and the dashboard.
 */
export class AuditLog {
  private readonly recent: AuditEntry[] = []

  constructor (private readonly log: AuditLogger, private readonly keep = 200, private readonly now: () => number = Date.now) {}

  record (input: AuditInput): void {
    const entry: AuditEntry = { at: new Date(this.now()).toISOString(), ...input }
    this.recent.push(entry)
    if (this.recent.length > this.keep) this.recent.shift()
    this.log.info({ audit: entry }, `audit: ${input.action}`)
  }

  /** The newest entries first, at most `limit`. */
  entries (limit = this.keep): AuditEntry[] {
    return this.recent.slice(-limit).reverse()
  }
}
