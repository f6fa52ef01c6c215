import { mkdir, readFile, chmod, stat } from 'node:fs/promises'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import { writeFileAtomic } from './atomic-file.js'
import type { Account } from './account.js'

export const TOKENS_FILE = 'codex_tokens.json'

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
  private releaseLock: (() => Promise<void>) | null = null

  constructor (readonly dir: string) {
    this.path = join(dir, TOKENS_FILE)
    this.backupPath = `${this.path}.bak`
  }

  /** Creates the directory (0700) if needed and takes an inter-process lock on it. */
  async open (): Promise<void> {
    await ensurePrivateDir(this.dir)
    try {
      this.releaseLock = await lockfile.lock(this.dir, { lockfilePath: join(this.dir, '.codex-equilibrium.lock'), stale: 20_000, update: 5_000, realpath: false })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new StoreError(`${this.dir} is in use by another codex-equilibrium process; stop it first (two processes would rotate the same refresh tokens)`)
      }
      throw err
    }
  }

  async close (): Promise<void> {
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
    return data as StoreData
  }

  /** Schedules a write of `data`; resolves once it (or a newer state) is on disk. */
  save (data: StoreData): Promise<void> {
    const first = this.pending === null
    this.pending = JSON.stringify(data, null, 2) + '\n'
    if (!first) return this.writing
    this.writing = this.writing.catch(() => {}).then(async () => {
      const text = this.pending
      this.pending = null
      if (text !== null) await writeFileAtomic(this.path, text, { mode: 0o600, backupPath: this.backupPath })
    })
    return this.writing
  }

  async flush (): Promise<void> {
    await this.writing.catch(() => {})
  }
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
