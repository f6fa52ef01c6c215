import { randomBytes } from 'node:crypto'
import { open, readdir, rename, link, unlink } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'

/**
 * Replaces `path` with `data` so that a crash at any moment leaves either the old or the new
 * content, never a torn file: write a private temp file, fsync it, rename it over the target,
 * fsync the directory. When `backupPath` is given, the previous file is kept there (a hard link,
 * so it costs no copy) as the last good state.
 */
export async function writeFileAtomic (path: string, data: string | Buffer, opts: { mode: number, backupPath?: string }): Promise<void> {
  const dir = dirname(path)
  const temp = join(dir, `${tempPrefix(path)}${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temp, 'wx', opts.mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } catch (err) {
    await handle.close().catch(() => {})
    await unlink(temp).catch(() => {})
    throw err
  }
  await handle.close()
  try {
    if (opts.backupPath !== undefined) await keepBackup(path, opts.backupPath)
    await rename(temp, path)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw err
  }
  await syncDirectory(dir)
}

async function keepBackup (path: string, backupPath: string): Promise<void> {
  const temp = `${backupPath}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await link(path, temp)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // nothing to back up yet
    throw err
  }
  await rename(temp, backupPath)
}

async function syncDirectory (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

function tempPrefix (path: string): string {
  return `.${basename(path)}.`
}

/**
 * Deletes the temp files that writes of `path` (and of its backup) leave when the process dies
 * mid-write. Only safe while no other writer of `path` can be running (e.g. under a lock).
 */
export async function removeLeftoverTemps (path: string, backupPath?: string): Promise<void> {
  const dir = dirname(path)
  const ours = (name: string): boolean =>
    (name.startsWith(tempPrefix(path)) && /\.\d+\.[0-9a-f]+\.tmp$/.test(name)) ||
    (backupPath !== undefined && dirname(backupPath) === dir && name.startsWith(`${basename(backupPath)}.`) && /\.[0-9a-f]+\.tmp$/.test(name))
  for (const name of await readdir(dir)) {
    if (ours(name)) await unlink(join(dir, name)).catch(() => {})
  }
}
