import type { MemoryEntry } from './port.js'
import type { UsageDelta } from './redis-usage-ledger.js'

/** What an instance tells the others on `<prefix>events`: only what changed; the receivers read it themselves. */
export type Message =
  | { from: string, kind: 'account' | 'removed', id: string }
  | { from: string, kind: 'sticky' }
  | { from: string, kind: 'lease', id: string, holder: string | null }
  | { from: string, kind: 'memory', entries: MemoryEntry[] }
  | { from: string, kind: 'keys' }
  | { from: string, kind: 'usage', delta: UsageDelta }

/** A message from the channel, or null for one that is not JSON. */
export function parseMessage (text: string): Message | null {
  try {
    return JSON.parse(text) as Message
  } catch {
    return null
  }
}
