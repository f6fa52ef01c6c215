import { jsonBytes, parseKeepingRaw, RawJson } from './raw-json.js'

/**
 * Tool lists, translated once. A client sends the same tools with every request of a conversation
 * (Claude Code and the coding agents: tens of kilobytes of schemas), and translating them was
 * half the cost of translating a request. So a list that comes raw (`parseKeepingRaw` keeps a
 * request's `tools` as its bytes) is looked up by those bytes; only a list not seen lately is
 * parsed and translated, and its translation kept as the backend's bytes.
 *
 * The translation is a function of the bytes alone (and of the client API): a list found here is
 * exactly what translating it again would give. Refused lists are not kept: they throw each time.
 */
const MAX_LISTS = 64
/** Longer lists are translated each time rather than kept. */
const MAX_LIST_BYTES = 1024 * 1024

interface Kept {
  api: string
  bytes: Buffer
  translated: RawJson
}

/** Kept lists by their length in bytes: a lookup compares only lists of the same length. */
const byLength = new Map<number, Kept[]>()
/** Oldest first, for forgetting beyond MAX_LISTS. */
const order: Kept[] = []

/** The list's translation for this client API: kept, or made with `translate` (which reads the parsed list) and kept. */
export function translatedToolList (api: string, list: RawJson, translate: (parsed: unknown) => unknown): RawJson {
  const bytes = list.bytes
  const same = byLength.get(bytes.length)
  if (same !== undefined) {
    for (const kept of same) {
      if (kept.api === api && kept.bytes.equals(bytes)) return kept.translated
    }
  }
  const translated = new RawJson(jsonBytes(translate(parseKeepingRaw(bytes))))
  if (bytes.length <= MAX_LIST_BYTES) keep({ api, bytes: Buffer.from(bytes), translated })
  return translated
}

/**
 * Where a list kept here ends when `bytes` hold it at `open`, or -1: a request's tools seen before
 * are not scanned for their end either. A kept list is a whole JSON list, so bytes that begin
 * with it hold that list and nothing longer.
 */
export function keptListEnd (bytes: Buffer, open: number): number {
  for (let i = order.length - 1; i >= 0; i--) {
    const kept = order[i]!.bytes
    const end = open + kept.length
    if (end <= bytes.length && bytes[end - 1] === 0x5d && bytes.compare(kept, 0, kept.length, open, end) === 0) return end
  }
  return -1
}

function keep (kept: Kept): void {
  const same = byLength.get(kept.bytes.length)
  if (same === undefined) byLength.set(kept.bytes.length, [kept])
  else same.push(kept)
  order.push(kept)
  if (order.length <= MAX_LISTS) return
  const oldest = order.shift()!
  const list = byLength.get(oldest.bytes.length)!
  list.splice(list.indexOf(oldest), 1)
  if (list.length === 0) byLength.delete(oldest.bytes.length)
}
