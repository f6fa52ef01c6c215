import type { StoredKey } from './key-file.js'
import type { Account, TokenSet } from './records.js'
import type { UsageLedger } from './usage-ledger.js'

/** The pool's whole state: the accounts in the order they were added and the sticky choice. */
export interface StoreData {
  version: 1
  sticky: string | null
  accounts: Account[]
}

export function emptyStore (): StoreData {
  return { version: 1, sticky: null, accounts: [] }
}

/**
 * The store port: what the pool and the refresh coordinator ask of any storage. The JSON file
 * implements `load`/`save`/`flush` alone (one process owns it); a store shared by several
 * instances also offers `shared`, the cluster-wide parts (leases, compare-and-set commits,
 * change notifications).
 */
export interface PoolStore {
  load: () => Promise<StoreData>
  /** Writes the state (a shared store writes only what changed since it last synced). */
  save: (data: StoreData) => Promise<void>
  flush: () => Promise<void>
  shared?: SharedStore
}

/** Where the client keys made at run time live: the auths dir's key file, or the shared store. */
export interface KeyStore {
  load: () => Promise<StoredKey[]>
  save: (keys: readonly StoredKey[]) => Promise<void>
  /** A shared store calls this with the keys as they are after another instance changed them. */
  onChange?: (listener: (keys: StoredKey[]) => void) => void
}

/** Something another instance changed: the receiver re-reads it and mirrors it. */
export type SharedChange =
  /** `othersServed`: requests the other instances added since this one last synced (its own unsaved ones stay on top). */
  | { kind: 'account', account: Account, othersServed: number }
  | { kind: 'removed', id: string }
  | { kind: 'sticky', id: string | null }

/** Something learned about a conversation: which account serves it, made a blob, issued a turn state. */
export interface MemoryEntry {
  kind: 'conversation' | 'blob' | 'turn'
  key: string
  account: string
}

/** The spending marker: this instance is at the issuer with the refresh token of this fingerprint. */
export interface SpendingMarker {
  fingerprint: string
  instance: string
  since: number
}

/** An account's tokens as the shared store holds them now. */
export interface StoredTokens {
  tokens: TokenSet
  accessExpiresAt: number | null
  lastRefreshAt: number | null
  spentRefreshTokens: string[]
  spending: SpendingMarker | null
}

export interface RefreshLease {
  readonly token: string
  /** Compare-and-delete: a lease taken over by someone else after expiry is left alone. */
  release: () => Promise<void>
}

/** The cluster-wide part of the port. */
export interface SharedStore {
  /** This instance's name (shown on accounts; owner of leases and spending markers). */
  readonly instance: string
  /** How long a refresh lease lives: the issuer call must be shorter. */
  readonly leaseMs: number
  /** Takes the account's refresh lease, or null when another instance holds it. Throws when the store is unreachable. */
  acquireLease: (accountId: string) => Promise<RefreshLease | null>
  /** The holder of the account's lease, if any (from the mirror, no round trip). */
  leaseHolder: (accountId: string) => string | null
  readTokens: (accountId: string) => Promise<StoredTokens | null>
  /** Sets the spending marker, only while the stored refresh token is still `fingerprint`'s. */
  markSpending: (accountId: string, fingerprint: string) => Promise<boolean>
  /** Clears a spending marker left for `fingerprint` (the refresh failed without rotating, or its owner died). */
  clearSpending: (accountId: string, fingerprint: string) => Promise<void>
  /** Writes the rotated tokens only while the stored refresh token is still the spent one; false when it is not. */
  commitTokens: (account: Account, spentFingerprint: string) => Promise<boolean>
  /** True while the named instance's heartbeat is alive. */
  isAlive: (instance: string) => Promise<boolean>
  /** Resolves when the account's tokens changed (a notification) or after `ms`. */
  waitForTokens: (accountId: string, ms: number) => Promise<void>
  /** Registers the receiver of other instances' changes. */
  onChange: (listener: (change: SharedChange) => void) => void
  /** Tells the other instances what this one learned of conversations (batched: no round trip per request). */
  shareMemory: (entry: MemoryEntry) => void
  onMemory: (listener: (entries: MemoryEntry[]) => void) => void
  /** The client keys, shared by every instance. */
  readonly clientKeys: KeyStore
  /** The usage ledger, added up across instances (a key's daily limit counts every instance's answers). */
  usageLedger: (o: { retentionMs: number, now: () => number, onWriteError?: (err: Error) => void }) => UsageLedger
}
