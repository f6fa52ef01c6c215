import { hash, randomBytes } from 'node:crypto'
import type { StoredKey } from '../store/key-file.js'
import type { KeyStore } from '../store/port.js'
import { DAY_MS, type UsageLedger } from '../store/usage-ledger.js'

/** Who a request came with: a named key (managed or from `--api-key`), or nobody when no key is required. */
export interface ClientKey {
  id: string
  name: string
  /** From `--api-key`: it cannot be deleted at run time and has no limit. */
  fixed: boolean
  dailyTokenLimit: number | null
  expiresAt: number | null
}

/** A key as the API shows it: never its secret, nor its hash. */
export interface KeyView {
  id: string
  name: string
  fixed: boolean
  created_at: string | null
  last_used_at: string | null
  expires_at: string | null
  daily_token_limit: number | null
  /** Tokens used since the start of today (UTC). */
  tokens_today: number
}

export type KeyVerdict =
  | { kind: 'ok' }
  | { kind: 'expired', expiresAt: number }
  | { kind: 'over_limit', limit: number, used: number, resetsAt: number }

/** A key as the lookup finds it: with its stored record (null for a key from `--api-key`). */
interface KnownKey {
  key: ClientKey
  stored: StoredKey | null
}

export class KeyError extends Error {
  constructor (readonly statusCode: number, readonly type: string, message: string) {
    super(message)
  }
}

export const KEY_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
/** The name used in the ledger and the metrics for requests made without a key. */
export const NO_KEY = 'none'
const SECRET_PREFIX = 'ceq_'

/** The start of the UTC day holding `at`: daily limits reset at midnight UTC. */
export function dayStart (at: number): number {
  return Math.floor(at / DAY_MS) * DAY_MS
}

/** One-shot `hash()` rather than a Hash object: every keyed request hashes its key, and this is a third of the cost. */
function hashOf (secret: string): string {
  return hash('sha256', secret, 'hex')
}

/**
 * The client keys: the fixed ones from `--api-key` (named `api-key-1`, `api-key-2`… by position)
 * and the managed ones, created and deleted at run time and kept as hashes in the auths dir. A
 * presented secret is found by its hash: a map lookup on a digest tells an attacker nothing about
 * the secrets themselves.
 */
export class ClientKeys {
  private readonly byHash = new Map<string, KnownKey>()
  /**
   * The key each connection last presented, so that a keep-alive connection's later requests are
   * not hashed again: compared as the same string on the same connection, never looked up across
   * connections. Emptied whenever the keys change.
   */
  private byConnection = new WeakMap<object, { secret: string, known: KnownKey }>()
  private managed: StoredKey[] = []
  private lastUsedChanged = false
  private writing: Promise<void> = Promise.resolve()

  constructor (private readonly fixedSecrets: readonly string[], private readonly file: KeyStore, private readonly ledger: UsageLedger, private readonly now: () => number = Date.now) {}

  async open (): Promise<void> {
    this.managed = await this.file.load()
    this.index()
    // Shared by several instances: a key made or deleted on another one counts here at once.
    this.file.onChange?.((keys) => {
      this.managed = keys
      this.index()
    })
  }

  /** Writes the keys' last-use times if they moved (they are also saved with every change). */
  async saveLastUse (): Promise<void> {
    if (!this.lastUsedChanged) return
    this.lastUsedChanged = false
    await this.persist()
  }

  /** Whether `/v1` needs a key: once any key exists, fixed or managed. */
  required (): boolean {
    return this.byHash.size > 0
  }

  /** The key a secret belongs to, marking it used; null for an unknown secret. `connection`: what it came over. */
  identify (secret: string, connection?: object): ClientKey | null {
    const last = connection === undefined ? undefined : this.byConnection.get(connection)
    const found = last !== undefined && last.secret === secret ? last.known : this.byHash.get(hashOf(secret))
    if (found === undefined) return null
    if (connection !== undefined && last?.known !== found) this.byConnection.set(connection, { secret, known: found })
    if (found.stored !== null) {
      found.stored.lastUsedAt = this.now()
      this.lastUsedChanged = true
    }
    return found.key
  }

  /** Whether a key may spend the pool now. */
  verdict (key: ClientKey): KeyVerdict {
    const now = this.now()
    if (key.expiresAt !== null && key.expiresAt <= now) return { kind: 'expired', expiresAt: key.expiresAt }
    if (key.dailyTokenLimit === null) return { kind: 'ok' }
    const start = dayStart(now)
    const used = this.ledger.keyTokensSince(key.name, start)
    return used >= key.dailyTokenLimit ? { kind: 'over_limit', limit: key.dailyTokenLimit, used, resetsAt: start + DAY_MS } : { kind: 'ok' }
  }

  list (): KeyView[] {
    const since = dayStart(this.now())
    return [...this.byHash.values()].map(({ key, stored }) => ({
      id: key.id,
      name: key.name,
      fixed: key.fixed,
      created_at: iso(stored?.createdAt ?? null),
      last_used_at: iso(stored?.lastUsedAt ?? null),
      expires_at: iso(key.expiresAt),
      daily_token_limit: key.dailyTokenLimit,
      tokens_today: this.ledger.keyTokensSince(key.name, since)
    }))
  }

  /** Makes a key; its secret is in the answer and nowhere else, ever. */
  async create (input: { name: string, dailyTokenLimit?: number | null, expiresAt?: number | null }): Promise<{ key: KeyView, secret: string }> {
    const name = input.name
    if (!new RegExp(KEY_NAME_PATTERN).test(name)) throw new KeyError(400, 'invalid_request', 'the name must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit')
    if (name === NO_KEY || /^api-key-\d+$/.test(name)) throw new KeyError(400, 'invalid_request', `the name "${name}" is reserved`)
    if (this.managed.some((key) => key.name === name)) throw new KeyError(409, 'key_exists', `a key named "${name}" exists already`)
    const now = this.now()
    if (input.expiresAt != null && input.expiresAt <= now) throw new KeyError(400, 'invalid_request', 'expires_at must be in the future')
    const secret = SECRET_PREFIX + randomBytes(32).toString('base64url')
    const stored: StoredKey = {
      id: `key_${randomBytes(6).toString('hex')}`,
      name,
      hash: hashOf(secret),
      createdAt: now,
      lastUsedAt: null,
      dailyTokenLimit: input.dailyTokenLimit ?? null,
      expiresAt: input.expiresAt ?? null
    }
    await this.change([...this.managed, stored])
    return { key: this.list().find((view) => view.id === stored.id)!, secret }
  }

  /** Deletes a managed key (by id or name); false when there is none. */
  async remove (idOrName: string): Promise<boolean> {
    if (this.fixedKeys().some((key) => key.id === idOrName)) throw new KeyError(409, 'fixed_key', `${idOrName} comes from --api-key: remove it there and restart`)
    const kept = this.managed.filter((key) => key.id !== idOrName && key.name !== idOrName)
    if (kept.length === this.managed.length) return false
    await this.change(kept)
    return true
  }

  /** Takes `keys` as the managed keys, on disk first: a key that could not be saved does not exist. */
  private async change (keys: StoredKey[]): Promise<void> {
    const before = this.managed
    this.managed = keys
    this.index()
    try {
      await this.persist()
    } catch (err) {
      this.managed = before
      this.index()
      throw err
    }
  }

  /**
   * Writes the managed keys as they are when the write starts, one write at a time: whatever the
   * order the writes were asked in, the last one holds the latest keys.
   */
  private persist (): Promise<void> {
    const write = this.writing.catch(() => {}).then(async () => { await this.file.save(this.managed) })
    this.writing = write
    return write
  }

  private fixedKeys (): ClientKey[] {
    return this.fixedSecrets.map((_, i) => ({ id: `api-key-${i + 1}`, name: `api-key-${i + 1}`, fixed: true, dailyTokenLimit: null, expiresAt: null }))
  }

  private index (): void {
    this.byHash.clear()
    this.byConnection = new WeakMap()
    const fixed = this.fixedKeys()
    this.fixedSecrets.forEach((secret, i) => { this.byHash.set(hashOf(secret), { key: fixed[i]!, stored: null }) })
    for (const stored of this.managed) {
      const key = { id: stored.id, name: stored.name, fixed: false, dailyTokenLimit: stored.dailyTokenLimit, expiresAt: stored.expiresAt }
      this.byHash.set(stored.hash, { key, stored })
    }
  }
}

function iso (ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString()
}
