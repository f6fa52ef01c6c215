import type { TokenUsage } from '../store/usage-ledger.js'
import { MarkedEventWatch } from './marked-event-watch.js'

export interface CompletedUsage extends TokenUsage {
  /** The model that answered, as the backend names it (null when it does not say). */
  model: string | null
}

/**
 * Picks the `usage` out of a passing stream's `response.completed` event. Only that event is
 * parsed: until its name shows up each chunk costs one byte search.
 */
export class UsageWatch {
  private readonly watch: MarkedEventWatch

  constructor (onUsage: (usage: CompletedUsage) => void) {
    this.watch = new MarkedEventWatch('response.completed', (eventName, payload) => {
      if (eventName !== 'response.completed' && payload.type !== 'response.completed') return false
      const usage = readUsage(payload.response)
      if (usage === null) return false
      onUsage(usage)
      return true
    })
  }

  push (chunk: Buffer): void {
    this.watch.push(chunk)
  }
}

/** A Responses API `response` object's usage; null when it carries none. */
export function readUsage (response: unknown): CompletedUsage | null {
  if (response === null || typeof response !== 'object') return null
  const { usage, model } = response as { usage?: unknown, model?: unknown }
  if (usage === null || typeof usage !== 'object') return null
  const u = usage as { input_tokens?: unknown, output_tokens?: unknown, input_tokens_details?: { cached_tokens?: unknown }, output_tokens_details?: { reasoning_tokens?: unknown } }
  return {
    model: typeof model === 'string' && model !== '' ? model : null,
    input: count(u.input_tokens),
    cachedInput: count(u.input_tokens_details?.cached_tokens),
    output: count(u.output_tokens),
    reasoning: count(u.output_tokens_details?.reasoning_tokens)
  }
}

function count (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0
}
