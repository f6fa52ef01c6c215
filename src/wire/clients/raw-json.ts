/**
 * A translated request is mostly long text the translation only moves: system prompts, tool
 * outputs, file contents, base64 images. Decoding it into JS strings and escaping it again for the
 * backend cost more than the rest of the request's way through the pool (and the heap churn of
 * every 40 KB body). So client bodies are parsed here with their long strings kept as the client's
 * own escaped bytes (`RawString`), and `jsonBytes` writes those bytes back unchanged.
 */

/** Strings at least this long (escaped bytes) stay raw; shorter ones cost less decoded than wrapped. */
const RAW_FROM = 256

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
        throw Object.assign(new Error(`the body is not valid JSON: ${(err as Error).message}`), { statusCode: 400 })
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
 * Parses a JSON body as JSON.parse would, except that string values of RAW_FROM bytes or more
 * become `RawString`s over `body` (their content is not checked: the backend judges what it is
 * sent). The long strings are cut out first, each left as a short mark, so that JSON.parse reads
 * only the rest, natively; the marks are then replaced. A body that cannot be read this way
 * (invalid JSON, a client string that looks like a mark) goes to JSON.parse whole, which throws
 * its own error or returns the plain value.
 */
export function parseKeepingRaw (body: Buffer): unknown {
  const cuts = longStrings(body)
  if (cuts === null || cuts.length === 0) return JSON.parse(body.toString('utf8'))
  const parts: Buffer[] = []
  let from = 0
  for (let i = 0; i < cuts.length; i += 2) {
    parts.push(body.subarray(from, cuts[i]), Buffer.from(`\\u0000${i / 2}`))
    from = cuts[i + 1]!
  }
  parts.push(body.subarray(from))
  try {
    return restoreMarks(JSON.parse(Buffer.concat(parts).toString('utf8')), body, cuts)
  } catch {
    return JSON.parse(body.toString('utf8'))
  }
}

/**
 * Where the long string values are: start and end offsets of their content, in pairs; null when
 * a string starts with U+0000 (a mark's look) or the text is not JSON enough to scan.
 */
function longStrings (body: Buffer): number[] | null {
  // One character a byte: the scan runs on string built-ins, never crossing into C++ per string.
  const text = body.toString('latin1')
  const cuts: number[] = []
  let at = text.indexOf('"')
  while (at !== -1) {
    let end = at + 1
    for (;;) {
      end = text.indexOf('"', end)
      if (end === -1) return null
      let backslashes = 0
      while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++
      if (backslashes % 2 === 0) break
      end++
    }
    if (end - at - 1 < RAW_FROM) {
      if (text.startsWith('\\u0000', at + 1)) return null
    } else if (!isKey(text, end + 1)) {
      cuts.push(at + 1, end)
    }
    at = text.indexOf('"', end + 1)
  }
  return cuts
}

function isKey (text: string, after: number): boolean {
  let code = text.charCodeAt(after)
  while (code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09) code = text.charCodeAt(++after)
  return code === 0x3a
}

function restoreMarks (value: unknown, body: Buffer, cuts: number[]): unknown {
  if (typeof value === 'string') {
    if (value.charCodeAt(0) !== 0) return value
    const i = Number(value.slice(1)) * 2
    return new RawString([body.subarray(cuts[i], cuts[i + 1])])
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
    // `__proto__` is an own property here, as JSON.parse made it: assigning it would set the prototype.
    if (restored !== member) Object.defineProperty(object, key, { value: restored, writable: true, enumerable: true, configurable: true })
  }
  return object
}

/** What a raw string stands as while `jsonBytes` runs JSON.stringify (its JSON text is MARK_JSON). */
const MARK = '\u0000raw'
const MARK_JSON = JSON.stringify(MARK)
/** The raw strings met, in order, while `jsonBytes` runs JSON.stringify; null otherwise. */
let marking: RawString[] | null = null

/**
 * The JSON text of a value, as bytes: what JSON.stringify would write, with raw strings copied as
 * they came (the long text is never decoded nor escaped). JSON.stringify writes the rest, natively,
 * with each raw string as a mark; the marks are then replaced by the raw bytes.
 */
export function jsonBytes (value: unknown): Buffer {
  const raws: RawString[] = []
  let json: string
  marking = raws
  try {
    json = JSON.stringify(value)
  } finally {
    marking = null
  }
  if (raws.length === 0) return Buffer.from(json)
  const parts: Buffer[] = []
  let from = 0
  for (const raw of raws) {
    const at = json.indexOf(MARK_JSON, from)
    // A client's own string equal to the mark: its place cannot be told apart, so no mark is trusted.
    if (at === -1) return Buffer.from(JSON.stringify(value))
    parts.push(Buffer.from(json.slice(from, at + 1)))
    for (const piece of raw.pieces) parts.push(typeof piece === 'string' ? Buffer.from(piece) : piece)
    from = at + MARK_JSON.length - 1
  }
  if (json.includes(MARK_JSON, from)) return Buffer.from(JSON.stringify(value))
  parts.push(Buffer.from(json.slice(from)))
  return Buffer.concat(parts)
}
