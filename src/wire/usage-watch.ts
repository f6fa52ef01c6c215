import type { TokenUsage } from '../store/usage-ledger.js'
import { eventObject, type WatchedEvent } from './marked-event-watch.js'
import { integerAt, objectTextAt, ownString, stringAt } from './json-text.js'

export interface CompletedUsage extends TokenUsage {
  /** The model that answered, as the backend names it (null when it does not say). */
  model: string | null
}

const COMPLETED = 'response.completed'
const MODEL_KEY = '"model":"'
const USAGE_KEY = '"usage":'
const MODEL_KEY_BYTES = Buffer.from(MODEL_KEY)
const USAGE_KEY_BYTES = Buffer.from(USAGE_KEY)
const QUOTE = 0x22
const BACKSLASH = 0x5c
/** How the backend's events begin: their type first. */
const COMPLETED_PREFIX = `{"type":"${COMPLETED}"`

/**
 * A passing SSE stream's `response.completed` event, for a `MarkedEventWatch`: `onUsage` gets the
 * usage in it, read by `completedUsage`.
 */
export function watchedUsage (onUsage: (usage: CompletedUsage) => void): WatchedEvent {
  return {
    mark: COMPLETED,
    onEvent: (eventName, data) => {
      const usage = completedUsage(eventName, data)
      if (usage === null) return false
      onUsage(usage)
      return true
    },
    onDataBytes: (chunk, start, end) => {
      const usage = completedUsageInBytes(chunk, start, end)
      if (usage === undefined) return undefined
      onUsage(usage)
      return true
    }
  }
}

/**
 * The usage of a `response.completed` event (its SSE name, if any, and its data: the JSON text of
 * the event, or a WebSocket frame); null for another event or one without usage.
 *
 * The event carries the whole response (every output item, encrypted reasoning included), often
 * tens of kilobytes, and all that is wanted is a handful of numbers near its end. So the `usage`
 * object and the model name are cut out of the text and only they are parsed. This relies on what
 * JSON guarantees: a quote inside a string is escaped, so `"usage":` unescaped in the text is a
 * key; the response's own `usage` is its last (it follows `output` and `tools`, the only parts that
 * nest objects), and its `model` its first. Anything else (another key order, a `usage` that is not
 * token counts) falls back to parsing the whole event.
 */
export function completedUsage (eventName: string | undefined, data: string): CompletedUsage | null {
  if (eventName === COMPLETED || data.startsWith(COMPLETED_PREFIX)) {
    const usageKey = data.lastIndexOf(USAGE_KEY)
    const usage = usageKey === -1 ? null : objectTextAt(data, usageKey + USAGE_KEY.length)
    const model = cutModel(data)
    if (usage !== null && model !== undefined) {
      const counts = readCounts(usage)
      if (counts !== null) return { model, input: counts.input, cachedInput: counts.cachedInput, output: counts.output, reasoning: counts.reasoning }
    }
  }
  const payload = eventObject(data)
  if (payload === null || (eventName !== COMPLETED && payload.type !== COMPLETED)) return null
  return readUsage(payload.response)
}

/**
 * The same cut as `completedUsage`'s, made on a `response.completed` event's data as bytes (one
 * line, whole): only the `usage` object and the model are decoded, not the event. Undefined where
 * the cut does not apply (the event is then read as text).
 */
export function completedUsageInBytes (chunk: Buffer, start: number, end: number): CompletedUsage | undefined {
  const usageKey = chunk.lastIndexOf(USAGE_KEY_BYTES, end - USAGE_KEY_BYTES.length)
  if (usageKey < start) return undefined
  // As Latin-1, one character per byte: the bytes of a character beyond ASCII are never a quote, a brace or a digit.
  const usage = objectTextAt(chunk.toString('latin1', usageKey + USAGE_KEY_BYTES.length, end), 0)
  const model = modelInBytes(chunk, start, end)
  const counts = usage === null || model === undefined ? null : readCounts(usage)
  return counts === null ? undefined : { model: model!, input: counts.input, cachedInput: counts.cachedInput, output: counts.output, reasoning: counts.reasoning }
}

/** `cutModel` on bytes: the first model name, decoded on its own; undefined when it holds an escape or is cut. */
function modelInBytes (chunk: Buffer, start: number, end: number): string | null | undefined {
  const key = chunk.indexOf(MODEL_KEY_BYTES, start)
  if (key === -1 || key >= end) return null
  const from = key + MODEL_KEY_BYTES.length
  for (let i = from; i < end; i++) {
    const byte = chunk[i]
    if (byte === QUOTE) return i === from ? null : chunk.toString('utf8', from, i)
    if (byte === BACKSLASH) return undefined
  }
  return undefined
}

/**
 * The four counts of a `usage` object's text, read as digits after their keys (each key name is
 * unique within `usage`); null when it holds neither input nor output tokens as plain integers.
 */
function readCounts (usage: string): TokenUsage | null {
  const input = integerAfter(usage, '"input_tokens":')
  const output = integerAfter(usage, '"output_tokens":')
  if (input === undefined || output === undefined || (input === null && output === null)) return null
  const cachedInput = integerAfter(usage, '"cached_tokens":')
  const reasoning = integerAfter(usage, '"reasoning_tokens":')
  if (cachedInput === undefined || reasoning === undefined) return null
  return { input: input ?? 0, cachedInput: cachedInput ?? 0, output: output ?? 0, reasoning: reasoning ?? 0 }
}

/** The integer after `key`: null when the key is absent, undefined when its value is anything but digits. */
function integerAfter (text: string, key: string): number | null | undefined {
  const at = text.indexOf(key)
  return at === -1 ? null : integerAt(text, at + key.length)
}

/**
 * The first `"model":"…"` of the text (null when there is none or it is empty); undefined when it
 * is not a whole JSON string.
 */
function cutModel (text: string): string | null | undefined {
  const key = text.indexOf(MODEL_KEY)
  if (key === -1) return null
  const model = stringAt(text, key + MODEL_KEY.length)
  // Kept with the counts (the ledger's rows, the recent requests): not as a view into the event.
  return model === '' ? null : model === undefined ? undefined : ownString(model)
}

/** A Responses API `response` object's usage; null when it carries none. */
export function readUsage (response: unknown): CompletedUsage | null {
  if (response === null || typeof response !== 'object') return null
  const { usage, model } = response as { usage?: unknown, model?: unknown }
  if (usage === null || typeof usage !== 'object') return null
  return countsOf(usage as Record<string, unknown>, typeof model === 'string' && model !== '' ? model : null)
}

function countsOf (usage: Record<string, unknown>, model: string | null): CompletedUsage {
  const u = usage as { input_tokens?: unknown, output_tokens?: unknown, input_tokens_details?: { cached_tokens?: unknown }, output_tokens_details?: { reasoning_tokens?: unknown } }
  return {
    model,
    input: count(u.input_tokens),
    cachedInput: count(u.input_tokens_details?.cached_tokens),
    output: count(u.output_tokens),
    reasoning: count(u.output_tokens_details?.reasoning_tokens)
  }
}

function count (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0
}
