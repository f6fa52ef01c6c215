import { RAW_FROM, stringEnd } from './raw-json.js'

const QUOTE = 0x22
const BACKSLASH = 0x5c

/**
 * Reads a JSON text from its bytes, in place, for a reader that copies most of what it reads:
 * strings are found and checked, not decoded. A method that finds nothing it can read says so and
 * leaves the cursor on the value it could not read; its caller then gives the whole text up.
 */
export class JsonCursor {
  at = 0
  /** Where the last string read starts (its first byte after the quote) and ends (its closing quote). */
  start = 0
  end = 0
  /** Whether the last string read holds an escape (a long one is taken to). */
  escaped = false

  constructor (readonly bytes: Buffer) {}

  /** The next byte that is not whitespace, the cursor on it (undefined at the end). */
  next (): number | undefined {
    const bytes = this.bytes
    let code = bytes[this.at]
    while (code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09) code = bytes[++this.at]
    return code
  }

  /** Takes `code` if it is next. */
  take (code: number): boolean {
    if (this.next() !== code) return false
    this.at++
    return true
  }

  /**
   * Reads the string at the cursor (`start`, `end`, `escaped`). One shorter than RAW_FROM is
   * checked as JSON.parse checks it (no raw control characters, only JSON's escapes); a longer
   * one, which `parseKeepingRaw` keeps raw, only for where it ends.
   */
  string (): boolean {
    const bytes = this.bytes
    if (this.next() !== QUOTE) return false
    const start = this.at + 1
    const end = stringEnd(bytes, this.at)
    if (end === -1) return false
    if (end - start >= RAW_FROM) return this.found(start, end, true)
    let escaped = false
    for (let i = start; i < end; i++) {
      const code = bytes[i]!
      if (code < 0x20) return false
      if (code === BACKSLASH) {
        const length = escapeLength(bytes, i)
        if (length === 0) return false
        escaped = true
        i += length - 1
      }
    }
    return this.found(start, end, escaped)
  }

  /** Reads `true`, `false` or `null`: 1, 0 or -1 (undefined if none is next). */
  literal (): 1 | 0 | -1 | undefined {
    const code = this.next()
    if (code === 0x74 && this.word(TRUE)) return 1
    if (code === 0x66 && this.word(FALSE)) return 0
    if (code === 0x6e && this.word(NULL)) return -1
    return undefined
  }

  /** Takes `null` if it is next. */
  null (): boolean {
    return this.next() === 0x6e && this.word(NULL)
  }

  /** Reads a number as JSON writes one; false if none is next. */
  number (): boolean {
    const bytes = this.bytes
    this.next()
    let i = this.at
    if (bytes[i] === 0x2d) i++
    if (bytes[i] === 0x30) i++
    else if (isDigit(bytes[i])) while (isDigit(bytes[i])) i++
    else return false
    if (bytes[i] === 0x2e) {
      if (!isDigit(bytes[++i])) return false
      while (isDigit(bytes[i])) i++
    }
    if (bytes[i] === 0x65 || bytes[i] === 0x45) {
      i++
      if (bytes[i] === 0x2b || bytes[i] === 0x2d) i++
      if (!isDigit(bytes[i])) return false
      while (isDigit(bytes[i])) i++
    }
    this.at = i
    return true
  }

  /**
   * Reads an object whose keys are among `names` (at most 31), each once: `read` takes each value
   * (its key's index in `names`) and says whether it could. False for any other object.
   */
  object (names: readonly Buffer[], read: (field: number) => boolean): boolean {
    if (!this.take(0x7b)) return false
    let seen = 0
    do {
      const field = this.key(names)
      if (field === -1 || (seen & (1 << field)) !== 0 || !read(field)) return false
      seen |= 1 << field
    } while (this.take(0x2c))
    return this.take(0x7d)
  }

  /** The object key at the cursor, its colon taken: its index in `names`; -1 otherwise. */
  key (names: readonly Buffer[]): number {
    const name = this.oneOf(names)
    return name !== -1 && this.take(0x3a) ? name : -1
  }

  /** The string at the cursor as one of `names` (written without escapes, compared in place): its index; -1 otherwise. */
  oneOf (names: readonly Buffer[]): number {
    if (!this.string() || this.escaped) return -1
    const bytes = this.bytes
    const start = this.start
    const length = this.end - start
    for (let k = 0; k < names.length; k++) {
      const name = names[k]!
      if (name.length !== length || name[0] !== bytes[start]) continue
      let i = 1
      while (i < length && name[i] === bytes[start + i]) i++
      if (i === length) return k
    }
    return -1
  }

  /** The last string read, decoded from UTF-8 (its escapes, if any, as they were written). */
  text (): string {
    return this.bytes.toString('utf8', this.start, this.end)
  }

  /** True when only whitespace is left. */
  atEnd (): boolean {
    return this.next() === undefined
  }

  private found (start: number, end: number, escaped: boolean): true {
    this.start = start
    this.end = end
    this.escaped = escaped
    this.at = end + 1
    return true
  }

  private word (word: Buffer): boolean {
    for (let i = 1; i < word.length; i++) {
      if (this.bytes[this.at + i] !== word[i]) return false
    }
    this.at += word.length
    return true
  }
}

const TRUE = Buffer.from('true')
const FALSE = Buffer.from('false')
const NULL = Buffer.from('null')

function isDigit (code: number | undefined): boolean {
  return code !== undefined && code >= 0x30 && code <= 0x39
}

/** The length of the escape at `at` (a backslash): 2, or 6 for `\uXXXX`; 0 if JSON has no such escape. */
function escapeLength (bytes: Buffer, at: number): number {
  switch (bytes[at + 1]) {
    case 0x22: case 0x5c: case 0x2f: case 0x62: case 0x66: case 0x6e: case 0x72: case 0x74: return 2
    case 0x75:
      for (let i = at + 2; i < at + 6; i++) {
        if (!isHex(bytes[i])) return 0
      }
      return 6
    default: return 0
  }
}

function isHex (code: number | undefined): boolean {
  return code !== undefined && ((code >= 0x30 && code <= 0x39) || (code >= 0x61 && code <= 0x66) || (code >= 0x41 && code <= 0x46))
}
