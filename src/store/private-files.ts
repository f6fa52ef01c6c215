import { chmod, lstat, mkdir, stat } from 'node:fs/promises'

/**
 * The auths dir holds live refresh tokens: it must be 0700 and its files 0600. What is looser is
 * tightened at start (with a warning, since someone or something loosened it); a symlinked token
 * file is refused, because atomic writes replace the link with a file and leave a spent token in
 * its target.
 */
export async function enforcePrivateDir (dir: string, warn: (message: string) => void): Promise<void> {
  let info
  try {
    info = await lstat(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await chmod(dir, 0o700) // mkdir's mode is narrowed by the umask, never widened: make it exact
    return
  }
  if (!info.isDirectory() && !info.isSymbolicLink()) throw new PrivateFileError(`${dir} is not a directory`)
  const mode = (await stat(dir)).mode & 0o777
  if ((mode & 0o077) !== 0) {
    await chmod(dir, 0o700)
    warn(`${dir} was readable by others (mode ${octal(mode)}); it holds refresh tokens, so it was made 0700`)
  }
}

/** Each of `paths` that exists must be a regular file; a looser mode than 0600 is tightened. */
export async function enforcePrivateFiles (paths: string[], warn: (message: string) => void): Promise<void> {
  for (const path of paths) {
    let info
    try {
      info = await lstat(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw err
    }
    if (info.isSymbolicLink()) {
      throw new PrivateFileError(`${path} is a symbolic link; the token file is replaced atomically on every write, which would leave the link's target holding a spent refresh token: move the real file into the auths dir instead`)
    }
    if (!info.isFile()) continue // load() reports what it finds there
    const mode = info.mode & 0o777
    if ((mode & 0o077) !== 0) {
      await chmod(path, 0o600)
      warn(`${path} was readable by others (mode ${octal(mode)}); it holds refresh tokens, so it was made 0600`)
    }
  }
}

export class PrivateFileError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'PrivateFileError'
  }
}

function octal (mode: number): string {
  return `0${mode.toString(8)}`
}
