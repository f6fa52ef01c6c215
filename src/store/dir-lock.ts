import { hostname } from 'node:os'
import { readFile, rmdir, writeFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'

const LOCK_NAME = '.codex-equilibrium.lock'
const OWNER_NAME = '.codex-equilibrium.lock.owner'
/** Directories this process holds: a record naming this pid is ours only if listed here. */
const heldHere = new Set<string>()

export class DirLockedError extends Error {
  constructor (readonly dir: string) {
    super(`${dir} is locked by a running process`)
    this.name = 'DirLockedError'
  }
}

export interface DirLockOptions {
  /** Called if the lock is taken away while held (it was not refreshed in time, e.g. on a read-only disk). */
  onLost: (err: Error) => void
}

/**
 * Locks a directory against other processes (proper-lockfile's mkdir lock) and records the owner's
 * pid beside it. proper-lockfile alone counts a lock as stale only once it has gone unrefreshed
 * for 20 s, so a process killed with -9 would keep a restart out that long (systemd restarts far
 * sooner); with the owner on record, a lock whose owner is gone from this host is taken over at once.
 * Returns the release function.
 */
export async function lockDirectory (dir: string, opts: DirLockOptions): Promise<() => Promise<void>> {
  const lockPath = join(dir, LOCK_NAME)
  const ownerPath = join(dir, OWNER_NAME)
  const take = (): Promise<() => Promise<void>> => lockfile.lock(dir, {
    lockfilePath: lockPath,
    stale: 20_000,
    update: 5_000,
    realpath: false,
    // The default throws from a timer, which would crash a server that can still serve from memory.
    onCompromised: opts.onLost
  })
  let release: () => Promise<void>
  try {
    release = await take()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err
    if (heldHere.has(lockPath) || !await ownerIsGone(ownerPath)) throw new DirLockedError(dir)
    await rmdir(lockPath).catch(() => {})
    try {
      release = await take()
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code === 'ELOCKED') throw new DirLockedError(dir)
      throw again
    }
  }
  heldHere.add(lockPath)
  await writeFile(ownerPath, JSON.stringify({ pid: process.pid, host: hostname() }) + '\n', { mode: 0o600 })
  return async () => {
    heldHere.delete(lockPath)
    await rm(ownerPath, { force: true })
    await release()
  }
}

/** True only when the recorded owner ran on this host and no longer exists. */
async function ownerIsGone (ownerPath: string): Promise<boolean> {
  let owner: { pid?: unknown, host?: unknown }
  try {
    owner = JSON.parse(await readFile(ownerPath, 'utf8')) as { pid?: unknown, host?: unknown }
  } catch {
    return false // no record (an older version, or the owner is still starting): only staleness frees it
  }
  if (owner.host !== hostname() || typeof owner.pid !== 'number' || !Number.isSafeInteger(owner.pid) || owner.pid <= 0) return false
  // Our own pid on record, for a lock this process does not hold: an earlier life of this container.
  if (owner.pid === process.pid) return true
  try {
    process.kill(owner.pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}
