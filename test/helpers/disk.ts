/**
 * Real disk failures for tests: a tiny tmpfs that fills up (ENOSPC) or is remounted read-only
 * (EROFS). Mounting needs root; where it is not permitted the test fails with that reason rather
 * than skipping, so a run that cannot exercise these faults does not pass silently.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Disk {
  dir: string
  /** Makes writes fail with a real error; returns the errno code expected. */
  break: () => Promise<string>
  repair: () => Promise<void>
  unmount: () => Promise<void>
}

/** A tmpfs of `size` at a fresh dir; the caller unmounts it (after whatever uses it has closed). */
export async function mountTmpfs (size: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ceq-disk-'))
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir])
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw new Error(`this test needs to mount a tmpfs (root with CAP_SYS_ADMIN; CI runs as root): ${(err as Error).message}`)
  }
  return dir
}

export async function unmount (dir: string): Promise<void> {
  await run('umount', ['-l', dir]).catch(() => {})
  await rm(dir, { recursive: true, force: true })
}

/** A disk that fills up: writes fail with ENOSPC until the filler is removed. */
export async function fullDisk (): Promise<Disk> {
  const dir = await mountTmpfs('256k')
  const filler = join(dir, 'filler')
  return {
    dir,
    async break () {
      await writeFile(filler, Buffer.alloc(1024 * 1024)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOSPC') throw err })
      return 'ENOSPC'
    },
    repair: () => rm(filler, { force: true }),
    unmount: () => unmount(dir)
  }
}

/** A disk that turns read-only (EROFS) by a remount. */
export async function readOnlyDisk (): Promise<Disk> {
  const dir = await mountTmpfs('1m')
  return {
    dir,
    async break () {
      await run('mount', ['-o', 'remount,ro', dir])
      return 'EROFS'
    },
    async repair () { await run('mount', ['-o', 'remount,rw', dir]) },
    unmount: () => unmount(dir)
  }
}
