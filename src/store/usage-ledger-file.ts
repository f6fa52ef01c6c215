import { readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from './atomic-file.js'
import type { UsageLedger } from './usage-ledger.js'
import { UsageTally } from './usage-tally.js'

export const LEDGER_FILE = 'usage_ledger.json'
const FORMAT_VERSION = 1

/**
 * The file on disk: names once in `names`, rows as arrays of numbers pointing into it — a year of
 * hours for a few accounts, keys and models stays a few megabytes.
 *   rows:  [hour, account, key, model, requests, input, cachedInput, output, reasoning]
 *   quota: [hour, account, primary, secondary]
 * Hours are counted since the epoch.
 */
interface LedgerFile {
  version: number
  names: string[]
  rows: number[][]
  quota: Array<Array<number | null>>
}

export interface FileUsageLedgerOptions {
  retentionMs: number
  /** How often pending counts are written (they are also written on close). */
  flushMs?: number
  now?: () => number
  onWriteError?: (err: Error) => void
  /** The file could not be read: it was moved to `keptAt` and the ledger starts empty. */
  onUnreadable?: (keptAt: string, err: Error) => void
}

/**
 * The embedded ledger: counts are added up in memory as answers complete and written in the
 * background, atomically, to the auths dir. Rows older than the retention are dropped.
 */
export class FileUsageLedger extends UsageTally implements UsageLedger {
  private readonly path: string
  private dirty = false
  private timer: NodeJS.Timeout | null = null
  private writing: Promise<void> = Promise.resolve()

  constructor (dir: string, private readonly opts: FileUsageLedgerOptions) {
    super(opts.retentionMs, opts.now ?? Date.now)
    this.path = join(dir, LEDGER_FILE)
  }

  protected changed (): void {
    this.dirty = true
  }

  async open (): Promise<void> {
    let text: string | null = null
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (text !== null) {
      try {
        this.load(JSON.parse(text) as LedgerFile)
      } catch (err) {
        // Counts are not worth refusing to serve over: keep the unreadable file aside and start afresh.
        const aside = `${this.path}.unreadable-${Date.now()}`
        await rename(this.path, aside)
        this.clear()
        this.opts.onUnreadable?.(aside, err as Error)
      }
    }
    this.prune()
    this.timer = setInterval(() => { void this.flush() }, this.opts.flushMs ?? 15_000)
    this.timer.unref()
  }

  async close (): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    await this.flush()
  }






  /** Writes the ledger if anything changed; one write at a time, each of the whole (small) file. */
  flush (): Promise<void> {
    this.writing = this.writing.then(async () => {
      if (!this.dirty) return
      this.dirty = false
      this.prune()
      try {
        await writeFileAtomic(this.path, JSON.stringify(this.serialize()), { mode: 0o600 })
      } catch (err) {
        this.dirty = true // try again on the next turn
        this.opts.onWriteError?.(err as Error)
      }
    })
    return this.writing
  }



  private serialize (): LedgerFile {
    const names: string[] = []
    const index = new Map<string, number>()
    const ref = (name: string): number => {
      let i = index.get(name)
      if (i === undefined) {
        i = names.push(name) - 1
        index.set(name, i)
      }
      return i
    }
    const rows = [...this.rows.values()].map((r) => [r.hour, ref(r.account), ref(r.key), ref(r.model), r.requests, r.input, r.cachedInput, r.output, r.reasoning])
    const quota = [...this.quota.values()].map((q) => [q.hour, ref(q.account), q.primary, q.secondary])
    return { version: FORMAT_VERSION, names, rows, quota }
  }

  private load (file: LedgerFile): void {
    if (file.version !== FORMAT_VERSION || !Array.isArray(file.names)) throw new Error(`${this.path} is not a usage ledger this version can read`)
    const name = (i: unknown): string => file.names[Number(i)] ?? '?'
    for (const [hour, account, key, model, requests, input, cachedInput, output, reasoning] of file.rows ?? []) {
      this.addRow({ hour: hour!, account: name(account), key: name(key), model: name(model), requests: requests!, input: input!, cachedInput: cachedInput!, output: output!, reasoning: reasoning! })
    }
    for (const [hour, account, primary, secondary] of file.quota ?? []) {
      this.keepQuota({ hour: hour!, account: name(account), primary: primary ?? null, secondary: secondary ?? null })
    }
  }
}
