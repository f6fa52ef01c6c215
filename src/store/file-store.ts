import { mkdir, readFile, chmod, stat, copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { removeLeftoverTemps, writeFileAtomic } from './atomic-file.js'
import { DirLockedError, lockDirectory } from './dir-lock.js'
import type { Account } from './records.js'

export const TOKENS_FILE = 'codex_tokens.json'
const FIRST_RETRY_MS = 2_000
const MAX_RETRY_MS = 60_000

/** What codex_tokens.json holds: the accounts in the order they were added and the sticky choice. */
export interface StoreData {
  version: 1
  sticky: string | null
  accounts: Account[]
}

export class StoreError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreError'
  }
}

export function emptyStore (): StoreData {
  return { version: 1, sticky: null, accounts: [] }
}

/**
 * The token file. Writes are atomic and serialized (the newest state wins, no write is torn);
 * a file that cannot be read or parsed is reported, never overwritten.
 */
export class TokenStore {
  readonly path: string
  readonly backupPath: string
  private writing: Promise<void> = Promise.resolve()
  private pending: string | null = null
  /** The file as we last read or wrote it: a different file on disk was changed by someone else. */
  private known: FileStamp | null = null
  /** Called when a file changed behind our back was kept aside instead of overwritten. */
  onConflict: ((keptAt: string) => void) | null = null
  private releaseLock: (() => Promise<void>) | null = null
  /** The newest state when its write failed, until a later write succeeds. */
  private unsaved: string | null = null
  private retryTimer: NodeJS.Timeout | null = null
  private retryDelayMs = FIRST_RETRY_MS
  private closed = false

  /** `onLockLost`: the lock was taken away while held (it could not be refreshed, e.g. on a read-only disk). */
  constructor (readonly dir: string, private readonly opts: { onLockLost?: (err: Error) => void } = {}) {
    this.path = join(dir, TOKENS_FILE)
    this.backupPath = `${this.path}.bak`
  }

  /**
   * Creates the directory (0700) if needed and takes an inter-process lock on it; then clears temp
   * files a killed writer left behind (with the lock held, nobody else is writing).
   */
  async open (): Promise<void> {
    await ensurePrivateDir(this.dir)
    const onLost = this.opts.onLockLost ?? ((err: Error) => { process.emitWarning(`lost the lock on ${this.dir}: ${err.message}`) })
    try {
      this.releaseLock = await lockDirectory(this.dir, { onLost })
    } catch (err) {
      if (err instanceof DirLockedError) {
        throw new StoreError(`${this.dir} is in use by another codex-equilibrium process; stop it first (two processes would rotate the same refresh tokens)`)
      }
      throw err
    }
    await removeLeftoverTemps(this.path, this.backupPath)
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    await this.flush()
    const release = this.releaseLock
    this.releaseLock = null
    if (release !== null) await release().catch(() => {})
  }

  async load (): Promise<StoreData> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return emptyStore()
      throw new StoreError(`cannot read ${this.path}: ${code ?? String(err)}`, { cause: err })
    }
    let data: unknown
    try {
      data = JSON.parse(text)
    } catch (err) {
      throw new StoreError(`${this.path} is not valid JSON (${(err as Error).message}); fix or move it away (the last good copy may be in ${this.backupPath})`, { cause: err })
    }
    const problem = describeProblem(data)
    if (problem !== null) throw new StoreError(`${this.path} is not a codex-equilibrium token file: ${problem}`)
    this.known = await stampOf(this.path)
    return data as StoreData
  }

  /** Schedules a write of `data`; resolves once it (or a newer state) is on disk. */
  save (data: StoreData): Promise<void> {
    return this.write(JSON.stringify(data, null, 2) + '\n')
  }

  private write (text: string): Promise<void> {
    const first = this.pending === null
    this.pending = text
    if (!first) return this.writing
    this.writing = this.writing.catch(() => {}).then(async () => {
      const text = this.pending
      this.pending = null
      if (text === null) return
      try {
        await this.keepForeignChanges()
        await writeFileAtomic(this.path, text, { mode: 0o600, backupPath: this.backupPath })
        this.known = await stampOf(this.path)
        this.unsaved = null
        this.retryDelayMs = FIRST_RETRY_MS
      } catch (err) {
        this.unsaved = text
        this.retryLater()
        throw err
      }
    })
    return this.writing
  }

  /**
   * A failed write (disk full, read-only) is tried again with growing pauses until one succeeds,
   * without waiting for the next change: the state may hold rotated refresh tokens that exist
   * nowhere else.
   */
  private retryLater (): void {
    if (this.retryTimer !== null || this.closed) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      // A newer state queued meanwhile supersedes the unsaved one.
      if (this.unsaved !== null && this.pending === null) this.write(this.unsaved).catch(() => {})
    }, this.retryDelayMs)
    this.retryTimer.unref()
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, MAX_RETRY_MS)
  }

  /** A file edited or replaced by someone else while we run is copied aside, never silently overwritten. */
  private async keepForeignChanges (): Promise<void> {
    const now = await stampOf(this.path)
    if (now === null || (this.known !== null && sameStamp(now, this.known))) return
    const keptAt = `${this.path}.conflict-${new Date().toISOString().replace(/[:.]/g, '-')}`
    await copyFile(this.path, keptAt)
    await chmod(keptAt, 0o600)
    this.onConflict?.(keptAt)
  }

  async flush (): Promise<void> {
    await this.writing.catch(() => {})
  }
}

interface FileStamp {
  ino: number
  size: number
  mtimeMs: number
}

async function stampOf (path: string): Promise<FileStamp | null> {
  try {
    const { ino, size, mtimeMs } = await stat(path)
    return { ino, size, mtimeMs }
  } catch {
    return null
  }
}

function sameStamp (a: FileStamp, b: FileStamp): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs
}

async function ensurePrivateDir (dir: string): Promise<void> {
  let existed = true
  try {
    await stat(dir)
  } catch {
    existed = false
  }
  if (!existed) {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await chmod(dir, 0o700)
  }
}

function describeProblem (data: unknown): string | null {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'not a JSON object'
  const store = data as Partial<StoreData>
  if (store.version !== 1) return `unknown version ${JSON.stringify(store.version)}`
  if (!Array.isArray(store.accounts)) return '"accounts" is not a list'
  if (store.sticky !== null && typeof store.sticky !== 'string') return '"sticky" is not an id'
  for (const [index, account] of store.accounts.entries()) {
    const tokens = (account as Partial<Account> | null)?.tokens
    if (typeof account?.id !== 'string' || typeof account.accountId !== 'string') return `account #${index + 1} has no id`
    if (tokens === undefined || typeof tokens.accessToken !== 'string' || typeof tokens.refreshToken !== 'string' || typeof tokens.idToken !== 'string') {
      return `account ${account.id} has no tokens`
    }
  }
  return null
}
