import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { mkdir, readFile, rm, rmdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const LOCK_NAME = '.codex-equilibrium.lock'
/** Taken (mkdir) by whoever breaks a dead holder's lock, so two starters cannot both break it. */
const BREAK_NAME = '.codex-equilibrium.lock.break'
/** Where older versions kept the owner record, beside the lock: removed when found. */
const LEGACY_OWNER_NAME = '.codex-equilibrium.lock.owner'
const OWNER_FILE = 'owner.json'
/** How often the holder touches its lock and checks that it is still its own. */
const HEARTBEAT_MS = 2_000
/**
 * A lock whose owner cannot be checked (another host, or no owner record yet) counts as dead only
 * after going this long untouched: a live holder touches it every HEARTBEAT_MS.
 */
const STALE_MS = 20_000

/** Directories this process holds: a record naming this pid is ours only if listed here. */
const heldHere = new Set<string>()

export class DirLockedError extends Error {
  constructor (readonly dir: string) {
    super(`${dir} is locked by a running process`)
    this.name = 'DirLockedError'
  }
}

export interface DirLockOptions {
  /** Called once if the lock is taken away while held (removed, or another owner's record in it). */
  onLost: (err: Error) => void
}

interface Owner {
  pid: number
  host: string
  /** Tells this holding apart from an earlier one by the same pid. */
  nonce: string
}

/**
 * Locks a directory against other processes: the lock is a directory made with mkdir (atomic),
 * and the holder's record (pid, host, a nonce) lives inside it, so a lock and its record are
 * created and removed together. A lock is broken only when provably dead: its owner ran on this
 * host and is gone, or (owner unknown) nobody has touched it for STALE_MS. Breaking happens under
 * a second mkdir lock, with the verdict checked again, so two starters never both win.
 *
 * A holder that cannot touch its lock (read-only disk) keeps it: its live pid still keeps others
 * out. A lock found removed or owned by someone else is reported once through `onLost`.
 * Returns the release function.
 */
export async function lockDirectory (dir: string, opts: DirLockOptions): Promise<() => Promise<void>> {
  const lockPath = join(dir, LOCK_NAME)
  if (heldHere.has(lockPath)) throw new DirLockedError(dir)
  const owner: Owner = { pid: process.pid, host: hostname(), nonce: randomBytes(9).toString('base64url') }
  if (!await create(lockPath, owner)) {
    if (!await provablyDead(lockPath)) throw new DirLockedError(dir)
    await breakAndTake(dir, lockPath, owner)
  }
  heldHere.add(lockPath)
  await rm(join(dir, LEGACY_OWNER_NAME), { force: true })
  const heartbeat = watch(lockPath, owner, opts.onLost)
  return async () => {
    clearInterval(heartbeat)
    heldHere.delete(lockPath)
    if (await isOurs(lockPath, owner) === true) await rm(lockPath, { recursive: true, force: true })
  }
}

/** mkdir the lock and write our record in it; false when a lock is there already. */
async function create (lockPath: string, owner: Owner): Promise<boolean> {
  try {
    await mkdir(lockPath, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
  try {
    await writeFile(join(lockPath, OWNER_FILE), JSON.stringify(owner) + '\n', { mode: 0o600, flag: 'wx' })
  } catch (err) {
    await rm(lockPath, { recursive: true, force: true }).catch(() => {})
    throw err
  }
  return true
}

async function breakAndTake (dir: string, lockPath: string, owner: Owner): Promise<void> {
  const breakPath = join(dir, BREAK_NAME)
  try {
    await mkdir(breakPath, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    // Someone else is breaking it right now, or died doing so long ago.
    if (!await untouchedFor(breakPath, STALE_MS)) throw new DirLockedError(dir)
    await rmdir(breakPath).catch(() => {})
    throw new DirLockedError(dir)
  }
  try {
    // Checked again under the break lock: the lock may have been broken and taken meanwhile.
    if (!await provablyDead(lockPath)) throw new DirLockedError(dir)
    await rm(lockPath, { recursive: true, force: true })
    if (!await create(lockPath, owner)) throw new DirLockedError(dir)
  } finally {
    await rmdir(breakPath).catch(() => {})
  }
}

/** Touches the lock now and then and checks it is still ours; reports a lost lock once. */
function watch (lockPath: string, owner: Owner, onLost: (err: Error) => void): NodeJS.Timeout {
  const timer = setInterval(() => {
    void (async () => {
      const ours = await isOurs(lockPath, owner)
      if (ours === false) {
        clearInterval(timer)
        heldHere.delete(lockPath)
        onLost(new Error('the lock directory was removed or taken over by another process'))
        return
      }
      // A read-only or full disk cannot be touched: the lock stays ours (our live pid keeps others out).
      await utimes(lockPath, new Date(), new Date()).catch(() => {})
    })()
  }, HEARTBEAT_MS)
  timer.unref()
  return timer
}

/** True if the lock holds our record, false if it is gone or another's, null if it cannot be read now. */
async function isOurs (lockPath: string, owner: Owner): Promise<boolean | null> {
  try {
    const record = JSON.parse(await readFile(join(lockPath, OWNER_FILE), 'utf8')) as Partial<Owner>
    return record.nonce === owner.nonce && record.pid === owner.pid
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR' || err instanceof SyntaxError) return false
    return null
  }
}

/**
 * True only when the holder is certainly gone: its record names a process of this host that no
 * longer exists (or this very pid, for a lock this process does not hold: an earlier life of this
 * container); or, when its owner cannot be checked, the lock has gone untouched for STALE_MS.
 */
async function provablyDead (lockPath: string): Promise<boolean> {
  let record: Partial<Owner> | null = null
  try {
    record = JSON.parse(await readFile(join(lockPath, OWNER_FILE), 'utf8')) as Partial<Owner>
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !await exists(lockPath)) return true // released meanwhile
    record = null // no record yet (a holder starting), or an older version's lock
  }
  const pid = record?.pid
  if (record === null || record.host !== hostname() || typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) {
    return await untouchedFor(lockPath, STALE_MS)
  }
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

async function untouchedFor (path: string, ms: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > ms
  } catch {
    return false
  }
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}
