import { bytesStartWith } from '../byte-seam.js'
import { joinedBytes } from '../request-body.js'

/**
 * A translated request is mostly long text the translation only moves: system prompts, tool
 * outputs, file contents, base64 images. Decoding it into JS strings and escaping it again for the
 * backend cost more than the rest of the request's way through the pool (and the heap churn of
 * every 40 KB body). So client bodies are parsed here with their long strings and their schemas
 * kept as the client's own bytes (`RawString`, `RawJson`), and `jsonBytes` writes those bytes back
 * unchanged.
 */

/** Strings at least this long (escaped bytes) stay raw; shorter ones cost less decoded than wrapped. */
export const RAW_FROM = 256

const BACKSLASH = 0x5c

/**
 * A JSON string value as escaped text (no quotes): slices of a client's body and escaped pieces
 * joined to them. Its value is decoded only when something reads it (and then once).
 */
export class RawString {
  private decoded: string | undefined

  constructor (readonly pieces: ReadonlyArray<Buffer | string>) {}

  get value (): string {
    if (this.decoded === undefined) {
      const text = this.pieces.map((piece) => typeof piece === 'string' ? piece : piece.toString('utf8')).join('')
      try {
        this.decoded = JSON.parse(`"${text}"`) as string
      } catch (err) {
        // Long strings are not checked while parsing (control characters, escapes): this one was not JSON.
        throw notJson(err)
      }
    }
    return this.decoded
  }

  /** JSON.stringify sees the value (token estimates, tool inputs re-encoded as arguments), or a mark for `jsonBytes`. */
  toJSON (): string {
    if (marking === null) return this.value
    marking.push(this)
    return MARK
  }
}

/** Text a translation moves without reading: a string, or a client's string kept raw. */
export type Text = string | RawString

export function isText (value: unknown): value is Text {
  return typeof value === 'string' || value instanceof RawString
}

/** A string the translation reads (a name, an id, a model): decoded when it came raw. */
export function stringValue (value: unknown): string | undefined {
  return typeof value === 'string' ? value : value instanceof RawString ? value.value : undefined
}

export function isEmptyText (text: Text): boolean {
  return typeof text === 'string' ? text === '' : text.pieces.every((piece) => piece.length === 0)
}

/** Texts joined (with `separator` between them): a plain string unless one of them is raw. */
export function joinText (texts: readonly Text[], separator = ''): Text {
  if (texts.every((text) => typeof text === 'string')) return texts.join(separator)
  const pieces: Array<Buffer | string> = []
  const escapedSeparator = escaped(separator)
  texts.forEach((text, i) => {
    if (i > 0 && escapedSeparator !== '') pieces.push(escapedSeparator)
    if (typeof text === 'string') pieces.push(escaped(text))
    else pieces.push(...text.pieces)
  })
  return new RawString(pieces)
}

function escaped (text: string): string {
  return JSON.stringify(text).slice(1, -1)
}

/**
 * A JSON object value kept as the client's bytes: a tool's parameter schema, a response format's
 * schema. The translation passes these on whole and never reads into them.
 */
export class RawJson {
  private decoded: unknown

  constructor (readonly bytes: Buffer) {}

  get value (): unknown {
    if (this.decoded === undefined) {
      try {
        this.decoded = JSON.parse(this.bytes.toString('utf8'))
      } catch (err) {
        throw notJson(err)
      }
    }
    return this.decoded
  }

  toJSON (): unknown {
    if (marking === null) return this.value
    marking.push(this)
    return MARK
  }
}

/**
 * A JSON value written already, as the chunks `jsonChunks` writes in its place: a translation that
 * writes part of the backend's JSON itself (chat-bytes.ts) hands it on this way.
 */
export class WrittenJson {
  constructor (readonly chunks: ReadonlyArray<string | Buffer>) {}

  toJSON (): unknown {
    if (marking === null) return JSON.parse(joinedBytes(this.chunks).toString('utf8'))
    marking.push(this)
    return MARK
  }
}

/** Object values under these keys are only moved by the translation (schemas): they stay raw. */
const RAW_OBJECT_KEYS = ['parameters', 'input_schema', 'schema'].map((key) => Buffer.from(key))
/** List values under these keys stay raw too: a request's tools, translated once per list (tool-lists.ts). */
const RAW_LIST_KEYS = [Buffer.from('tools')]

const STRING = 0
const OBJECT = 1

/** Where the raw list that opens at `open` ends, when the caller knows it without a scan (a list seen before); -1 otherwise. */
export type KnownEnd = (bytes: Buffer, open: number) => number

/**
 * Parses a JSON body as JSON.parse would, except that string values of RAW_FROM bytes or more
 * become `RawString`s, and objects under RAW_OBJECT_KEYS `RawJson`s, over `body` (their content is
 * not checked: the backend judges what it is sent). Those values are cut out first, each left as
 * a short mark, so that JSON.parse reads only the rest, natively; the marks are then replaced. A
 * body that cannot be read this way (invalid JSON, a client string that looks like a mark) goes to
 * JSON.parse whole, which throws its own error or returns the plain value.
 */
export function parseKeepingRaw (body: Buffer, knownEnd?: KnownEnd): unknown {
  const cuts = rawValues(body, knownEnd)
  if (cuts === null || cuts.length === 0) return JSON.parse(body.toString('utf8'))
  // The rest of the body as one string (a few kilobytes), each cut value a mark.
  let rest = ''
  let from = 0
  for (let i = 0; i < cuts.length; i += 3) {
    rest += body.toString('utf8', from, cuts[i]) + (cuts[i + 2] === STRING ? `\\u0000${i / 3}` : `"\\u0000${i / 3}"`)
    from = cuts[i + 1]!
  }
  rest += body.toString('utf8', from)
  try {
    return restoreMarks(JSON.parse(rest), body, cuts)
  } catch {
    return JSON.parse(body.toString('utf8'))
  }
}

/**
 * The values to keep raw, in triples (found on the bytes themselves: a string copy of a body would
 * be one more body-sized allocation per request): start and end offsets (a string's content, an object's
 * braces and all) and the kind; null when a string starts with U+0000 (a mark's look) or the body
 * is not JSON enough to scan.
 */
function rawValues (bytes: Buffer, knownEnd?: KnownEnd): number[] | null {
  const cuts: number[] = []
  let at = nextQuote(bytes, 0)
  while (at !== -1) {
    const end = stringEnd(bytes, at)
    if (end === -1) return null
    let next = end + 1
    if (end - at - 1 < RAW_FROM) {
      if (bytes[at + 1] === BACKSLASH && bytesStartWith(bytes, at + 1, MARK_START)) return null
      const colon = afterSpace(bytes, end + 1)
      const opener = bytes[colon] !== 0x3a ? -1 : rawOpener(bytes, at + 1, end - at - 1)
      if (opener !== -1) {
        const open = afterSpace(bytes, colon + 1)
        if (bytes[open] === opener) {
          const known = opener === 0x5b && knownEnd !== undefined ? knownEnd(bytes, open) : -1
          const close = known !== -1 ? known : objectEnd(bytes, open)
          if (close === -1) return null
          cuts.push(open, close, OBJECT)
          next = close
        }
      }
    } else if (bytes[afterSpace(bytes, end + 1)] !== 0x3a) {
      cuts.push(at + 1, end, STRING)
    }
    at = nextQuote(bytes, next)
  }
  return cuts
}

/** What opens the value kept raw under the key at `at` (`{` or `[`); -1 for a key whose value is read. */
function rawOpener (bytes: Buffer, at: number, length: number): number {
  if (isKeyIn(RAW_OBJECT_KEYS, bytes, at, length)) return 0x7b
  return isKeyIn(RAW_LIST_KEYS, bytes, at, length) ? 0x5b : -1
}

function isKeyIn (keys: readonly Buffer[], bytes: Buffer, at: number, length: number): boolean {
  for (const key of keys) {
    if (key.length === length && bytesStartWith(bytes, at, key)) return true
  }
  return false
}

const MARK_START = Buffer.from('\\u0000')

/** How far a quote is looked for byte by byte before asking Buffer#indexOf (a native call costs tens of ns). */
const NEAR = 48

/**
 * The offset of the next `"` from `at`, or -1. Most are a few bytes away (keys, short values, the
 * `":"` between them) and a loop finds them cheaper than a native call; long strings go to indexOf.
 */
function nextQuote (bytes: Buffer, at: number): number {
  const near = Math.min(at + NEAR, bytes.length)
  for (let i = at; i < near; i++) {
    if (bytes[i] === 0x22) return i
  }
  return near === bytes.length ? -1 : bytes.indexOf(0x22, near)
}

/** The offset of the quote that closes the string opened at `at`, or -1. */
export function stringEnd (bytes: Buffer, at: number): number {
  let end = at + 1
  for (;;) {
    end = nextQuote(bytes, end)
    if (end === -1) return -1
    let backslashes = 0
    while (bytes[end - 1 - backslashes] === BACKSLASH) backslashes++
    if (backslashes % 2 === 0) return end
    end++
  }
}

/** The offset just past the object (or list) opened at `open`, -1 if it does not end: brackets are counted outside strings only. */
export function objectEnd (bytes: Buffer, open: number): number {
  let depth = 0
  let at = open
  for (;;) {
    const quote = nextQuote(bytes, at)
    const gapEnd = quote === -1 ? bytes.length : quote
    for (let i = at; i < gapEnd; i++) {
      const code = bytes[i]
      if (code === 0x7b || code === 0x5b) depth++
      else if ((code === 0x7d || code === 0x5d) && --depth === 0) return i + 1
    }
    if (quote === -1) return -1
    const end = stringEnd(bytes, quote)
    if (end === -1) return -1
    at = end + 1
  }
}

function afterSpace (bytes: Buffer, at: number): number {
  let code = bytes[at]
  while (code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09) code = bytes[++at]
  return at
}

function restoreMarks (value: unknown, body: Buffer, cuts: number[]): unknown {
  if (typeof value === 'string') {
    if (value.charCodeAt(0) !== 0) return value
    const i = Number(value.slice(1)) * 3
    const bytes = body.subarray(cuts[i], cuts[i + 1])
    return cuts[i + 2] === STRING ? new RawString([bytes]) : new RawJson(bytes)
  }
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restoreMarks(value[i], body, cuts)
    return value
  }
  const object = value as Record<string, unknown>
  for (const key of Object.keys(object)) {
    const member = object[key]
    const restored = restoreMarks(member, body, cuts)
    if (restored === member) continue
    // `__proto__` is an own property here, as JSON.parse made it: assigning it would set the prototype.
    if (key === '__proto__') Object.defineProperty(object, key, { value: restored, writable: true, enumerable: true, configurable: true })
    else object[key] = restored
  }
  return object
}

/** What a raw value stands as while `jsonBytes` runs JSON.stringify (its JSON text is MARK_JSON). */
const MARK = '\u0000raw'
const MARK_JSON = JSON.stringify(MARK)
/** The raw values met, in order, while `jsonBytes` runs JSON.stringify; null otherwise. */
let marking: Array<RawString | RawJson | WrittenJson> | null = null

/**
 * The JSON text of a value, as bytes: what JSON.stringify would write, with raw values copied as
 * they came (the long text is never decoded nor escaped).
 */
export function jsonBytes (value: unknown): Buffer {
  return joinedBytes(jsonChunks(value))
}

/**
 * The same JSON text as `jsonBytes`, as chunks to write one after another: the raw values are the
 * client's own bytes (views of its body), the text between them stays text. A translated body is
 * mostly the client's long strings: copying them into a fresh body-sized buffer was a third of
 * what a translation cost, and writing the text around them into buffers most of the rest (the
 * upstream call writes the chunks with one `writev`, which copies text natively).
 *
 * A plain object (a request body) is written member by member: its raw members go in as they are
 * and only the others are serialized, where serializing the whole with marks for them and then
 * searching the text for the marks cost half as much again.
 */
export function jsonChunks (value: unknown): Array<string | Buffer> {
  if (!isPlainObject(value)) return markedChunks(value)
  const chunks: Array<string | Buffer> = ['{']
  let first = true
  for (const key of Object.keys(value)) {
    const member = value[key]
    const raw = member instanceof RawString
    const pieces = raw ? member.pieces : member instanceof RawJson ? [member.bytes] : member instanceof WrittenJson ? member.chunks : markedChunks(member)
    // As JSON.stringify: a member without JSON (undefined, a function) is left out.
    if (!raw && pieces.length === 0) continue
    addJoined(chunks, `${first ? '' : ','}${PLAIN_KEY.test(key) ? `"${key}"` : JSON.stringify(key)}:${raw ? '"' : ''}`)
    first = false
    for (const piece of pieces) addJoined(chunks, piece)
    if (raw) addJoined(chunks, '"')
  }
  addJoined(chunks, '}')
  return chunks
}

/** Adds a piece to the chunks: text next to text is one chunk, as each chunk is a write of its own until the socket's. */
function addJoined (chunks: Array<string | Buffer>, piece: string | Buffer): void {
  const last = chunks.length - 1
  if (typeof piece === 'string' && typeof chunks[last] === 'string') chunks[last] += piece
  else chunks.push(piece)
}

/** A key written as it is between quotes. */
const PLAIN_KEY = /^[A-Za-z0-9_]+$/

/** An object JSON.stringify writes member by member (no `toJSON` of its own, no class of its own). */
function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype && typeof (value as { toJSON?: unknown }).toJSON !== 'function'
}

/**
 * JSON.stringify writes the value, natively, with each raw value as a mark; the marks are then
 * replaced by the raw bytes.
 */
function markedChunks (value: unknown): Array<string | Buffer> {
  const raws: Array<RawString | RawJson | WrittenJson> = []
  let json: string | undefined
  marking = raws
  try {
    json = JSON.stringify(value) as string | undefined
  } finally {
    marking = null
  }
  if (json === undefined) return []
  if (raws.length === 0) return [json]
  const chunks: Array<string | Buffer> = []
  const add = (piece: string | Buffer): void => { addJoined(chunks, piece) }
  let from = 0
  for (const raw of raws) {
    const at = json.indexOf(MARK_JSON, from)
    // A client's own string equal to the mark: its place cannot be told apart, so no mark is trusted.
    if (at === -1) return [JSON.stringify(value)]
    if (raw instanceof RawString) {
      // A raw string's pieces go between the mark's quotes.
      add(json.slice(from, at + 1))
      for (const piece of raw.pieces) add(piece)
      from = at + MARK_JSON.length - 1
    } else {
      add(json.slice(from, at))
      if (raw instanceof RawJson) add(raw.bytes)
      else for (const piece of raw.chunks) add(piece)
      from = at + MARK_JSON.length
    }
  }
  if (json.includes(MARK_JSON, from)) return [JSON.stringify(value)]
  add(json.slice(from))
  return chunks
}

/** The 400 for a client body that is not JSON, naming what the parser found. */
export function notJson (err: unknown): Error {
  return Object.assign(new Error(`the body is not valid JSON: ${(err as Error).message}`), { statusCode: 400 })
}
