/**
 * Values read straight from a JSON text, for events whose few wanted fields are cheaper to cut out
 * than the whole event to parse. What makes it safe is what JSON guarantees: inside a string every
 * quote is escaped, so an unescaped `"key":` in the text is a key, never part of a value.
 */

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN = 0x7b
const CLOSE = 0x7d
const LIST = 0x5b

/**
 * The string whose text starts at `start` (just past its opening quote), decoded; undefined when
 * no string ends there (a cut text) or its escapes are not JSON.
 */
export function stringAt (text: string, start: number): string | undefined {
  let end = text.indexOf('"', start)
  while (end !== -1) {
    let backslashes = 0
    while (end - 1 - backslashes >= start && text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++
    if (backslashes % 2 === 0) break
    end = text.indexOf('"', end + 1)
  }
  if (end === -1) return undefined
  const raw = text.slice(start, end)
  if (!raw.includes('\\')) return raw
  try {
    return JSON.parse(`"${raw}"`) as string
  } catch {
    return undefined
  }
}

/** V8 keeps a substring this long or longer as a view into the string it was cut from. */
const SLICED_FROM = 13

/**
 * `value`, cut from `text`, as a string of its own: a value kept past the event it came in (in the
 * ledger, the recent requests) must not keep the whole event's text alive with it.
 */
export function ownString (value: string): string {
  return value.length < SLICED_FROM ? value : Buffer.from(value, 'utf8').toString('utf8')
}

/**
 * The non-negative integer written at `start` (after any spaces), up to 15 digits; undefined when
 * anything else is there (a sign, a fraction, a string) or it is not followed by `,`, `}` or a space.
 */
export function integerAt (text: string, start: number): number | undefined {
  let i = start
  while (isSpace(text.charCodeAt(i))) i++
  const first = i
  let value = 0
  for (let c = text.charCodeAt(i); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i)) value = value * 10 + (c - 0x30)
  const next = text.charCodeAt(i)
  if (i === first || i - first > 15 || (next !== 0x2c && next !== CLOSE && !isSpace(next))) return undefined
  return value
}

/**
 * Where the value of `key` (`"delta":`) begins in the object that opens at `objectStart`, written
 * flat up to it (`{"type":…,"delta":…`), so that the key is that object's own; -1 when it is
 * absent, or when another object or a list opens before it (the key may be a nested one's): the
 * caller then parses the text instead.
 */
export function flatValueAt (text: string, key: string, objectStart = 0): number {
  const at = text.indexOf(key, objectStart)
  if (at === -1 || text.charCodeAt(objectStart) !== OPEN) return -1
  // A loop rather than lastIndexOf: the keys wanted sit a few dozen characters in, and a native call costs more.
  for (let i = objectStart + 1; i < at; i++) {
    const c = text.charCodeAt(i)
    if (c === OPEN || c === LIST) return -1
  }
  return at + key.length
}

/** The string value of `keyAndQuote` (`"delta":"`) as `flatValueAt` finds it; undefined where that finds none. */
export function flatString (text: string, keyAndQuote: string, objectStart = 0): string | undefined {
  const at = flatValueAt(text, keyAndQuote, objectStart)
  return at === -1 ? undefined : stringAt(text, at)
}

/** The text of the object that opens at `start` (after any spaces); null when none does, or it is cut. */
export function objectTextAt (text: string, start: number): string | null {
  let i = start
  while (isSpace(text.charCodeAt(i))) i++
  if (text.charCodeAt(i) !== OPEN) return null
  const first = i
  let depth = 0
  let inString = false
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (c === OPEN) {
      depth++
    } else if (c === CLOSE && --depth === 0) {
      return text.slice(first, i + 1)
    }
  }
  return null
}

function isSpace (c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}
