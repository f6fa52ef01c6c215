import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from './atomic-file.js'
import type { KeyStore } from './port.js'

export const KEYS_FILE = 'client_keys.json'

/** A client key as kept on disk: its secret only as a SHA-256 hash. */
export interface StoredKey {
  id: string
  name: string
  /** Hex SHA-256 of the secret. The secrets are 256 random bits, so a fast hash is as good as a slow one. */
  hash: string
  createdAt: number
  lastUsedAt: number | null
  /** Tokens (input + output) a UTC day; null: no limit. */
  dailyTokenLimit: number | null
  expiresAt: number | null
}

/** The named client keys' file in the auths dir, replaced atomically like the token file. */
export class KeyFile implements KeyStore {
  readonly path: string

  constructor (dir: string) {
    this.path = join(dir, KEYS_FILE)
  }

  async load (): Promise<StoredKey[]> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const parsed = JSON.parse(text) as { version?: number, keys?: StoredKey[] }
    if (parsed.version !== 1 || !Array.isArray(parsed.keys)) throw new Error(`${this.path} is not a key file this version can read`)
    return parsed.keys
  }

  async save (keys: readonly StoredKey[]): Promise<void> {
    await writeFileAtomic(this.path, JSON.stringify({ version: 1, keys }, null, 2) + '\n', { mode: 0o600 })
  }
}
