import { readFile, chmod, stat, copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { removeLeftoverTemps, writeFileAtomic } from './atomic-file.js'
import { DirLockedError, lockDirectory } from './dir-lock.js'
import { PrivateFileError, enforcePrivateDir, enforcePrivateFiles } from './private-files.js'
import { emptyStore, type PoolStore, type StoreData } from './port.js'
import { checkStoreData } from './store-check.js'
import { StoreError } from './store-error.js'

export const TOKENS_FILE = 'codex_tokens.json'
const FIRST_RETRY_MS = 2_000
const MAX_RETRY_MS = 60_000
/** On stop, an unsaved state is tried again this often, for up to `stopWaitMs`. */
const STOP_RETRY_MS = 500

/** What codex_tokens.json holds: the pool's state (see the port). */
export { emptyStore, type StoreData } from './port.js'

export { StoreError } from './store-error.js'

/** Another process holds the auths dir. */
export class StoreInUseError extends StoreError {
  constructor (dir: string) {
    super(`${dir} is in use by another codex-equilibrium process; stop it first (two processes would rotate the same refresh tokens)`)
    this.name = 'StoreInUseError'
  }
}

/**
 * The token file. Writes are atomic and serialized (the newest state wins, no write is torn);
 * a file that cannot be read or parsed is reported, never overwritten.
 */
export class TokenStore implements PoolStore {
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
  /** The lock was lost: another process may own the file now, so nothing more is written. */
  private lost = false

  /**
   * `onLockLost`: the lock was taken away while held (it could not be refreshed, e.g. on a read-only disk).
   * `stopWaitMs`: how long `close` keeps trying to write a state that could not be saved (default 10 s).
   */
  constructor (readonly dir: string, private readonly opts: { onLockLost?: (err: Error) => void, onWarning?: (message: string) => void, stopWaitMs?: number } = {}) {
    this.path = join(dir, TOKENS_FILE)
    this.backupPath = `${this.path}.bak`
  }

  /**
   * Creates the directory if needed and makes it and the token files private (0700/0600), takes an
   * inter-process lock on it, then clears temp files a killed writer left behind (with the lock
   * held, nobody else is writing). Problems are StoreErrors with a one-line reason.
   */
  async open (): Promise<void> {
    const warn = this.opts.onWarning ?? ((message: string) => { process.emitWarning(message) })
    const onLost = (err: Error): void => {
      this.lost = true
      if (this.opts.onLockLost !== undefined) this.opts.onLockLost(err)
      else process.emitWarning(`lost the lock on ${this.dir}: ${err.message}`)
    }
    try {
      await enforcePrivateDir(this.dir, warn)
      this.releaseLock = await lockDirectory(this.dir, { onLost })
    } catch (err) {
      throw this.startupProblem(err)
    }
    try {
      await enforcePrivateFiles([this.path, this.backupPath], warn)
      await removeLeftoverTemps(this.path, this.backupPath)
    } catch (err) {
      await this.releaseLock().catch(() => {})
      this.releaseLock = null
      throw this.startupProblem(err)
    }
  }

  /** True once the lock was lost: the process must stop using the tokens. */
  get lockLost (): boolean {
    return this.lost
  }

  private startupProblem (err: unknown): unknown {
    if (err instanceof DirLockedError) return new StoreInUseError(this.dir)
    if (err instanceof PrivateFileError) return new StoreError(err.message)
    const code = (err as NodeJS.ErrnoException).code
    const fix = 'refresh tokens rotate, so the token file must be writable'
    switch (code) {
      case 'EROFS': return new StoreError(`${this.dir} is on a read-only filesystem (${fix}): remount it read-write or choose another --auths-dir`, { cause: err })
      case 'EACCES': case 'EPERM': return new StoreError(`no permission to write in ${this.dir} (${code}; ${fix}): run as the user that owns it or choose another --auths-dir`, { cause: err })
      case 'ENOTDIR': return new StoreError(`${this.dir}: a part of this path is not a directory`, { cause: err })
      case 'ENOSPC': return new StoreError(`no space left on the device of ${this.dir}`, { cause: err })
      default: return err
    }
  }

  /**
   * Waits for the last write. A state that could not be saved (it may hold the only copy of a
   * rotated refresh token) is tried again for a while; if it still cannot be written, `close`
   * releases the lock and throws, so the process can exit non-zero and say so.
   */
  async close (): Promise<void> {
    this.closed = true
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    let failure: unknown = null
    try {
      await this.flush()
      const deadline = Date.now() + (this.opts.stopWaitMs ?? 10_000)
      while (this.unsaved !== null && !this.lost) {
        try {
          await this.write(this.unsaved)
        } catch (err) {
          failure = err
          if (Date.now() >= deadline) break
          await new Promise((resolve) => setTimeout(resolve, STOP_RETRY_MS))
        }
      }
    } finally {
      const release = this.releaseLock
      this.releaseLock = null
      if (release !== null) await release().catch(() => {})
    }
    if (this.unsaved !== null) {
      const code = (failure as NodeJS.ErrnoException | null)?.code ?? (failure as Error | null)?.message ?? 'unknown error'
      throw new StoreError(`the newest state could not be saved to ${this.path} before stopping (${code}): refresh tokens rotated since the last save are lost, and those accounts may need a new login`, { cause: failure })
    }
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
    const checked = checkStoreData(data)
    if (typeof checked === 'string') throw new StoreError(`${this.path} is not a valid codex-equilibrium token file: ${checked}; fix that field (the last good copy may be in ${this.backupPath})`)
    this.known = await stampOf(this.path)
    return checked
  }

  /** Schedules a write of `data`; resolves once it (or a newer state) is on disk. */
  save (data: StoreData): Promise<void> {
    return this.write(JSON.stringify(data, null, 2) + '\n')
  }

  private write (text: string): Promise<void> {
    if (this.lost) return Promise.reject(new StoreError(`not writing ${this.path}: this process lost its lock on ${this.dir}`))
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
