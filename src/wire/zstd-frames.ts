/**
 * The memory a zstd body asks for before a byte of it is decoded. A decoder reserves each frame's
 * window (its back-reference buffer) up front, as large as the frame header declares: up to 2 GiB
 * from a frame of a few bytes. Checking the output size as it grows cannot catch that, so every
 * frame's header is read first (RFC 8878 §3.1) and a body asking for more than the proxy allows
 * is refused before decoding.
 */

/** RFC 8878 asks decoders to support windows up to 8 MiB; encoders stay within it below level 20. */
export const MAX_WINDOW_BYTES = 8 * 1024 * 1024

const FRAME_MAGIC = 0xfd2fb528
const SKIPPABLE_MAGIC_HIGH = 0x184d2a5 // 0x184D2A50 to 0x184D2A5F
const BLOCK_RAW = 0
const BLOCK_RLE = 1
const BLOCK_COMPRESSED = 2

/** What one zstd frame's header declares. */
export interface FrameDemand {
  /** The window the decoder reserves for it. */
  windowBytes: number
  /** The frame's decoded size when the header gives it. */
  contentBytes: number | null
}

export class ZstdFrameError extends Error {}

/** The demand of every zstd frame in `body`, in order; skippable frames are passed over. */
export function frameDemands (body: Uint8Array): FrameDemand[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const need = (at: number, bytes: number): void => {
    if (at + bytes > body.length) throw new ZstdFrameError('the zstd body is truncated')
  }
  const demands: FrameDemand[] = []
  let at = 0
  while (at < body.length) {
    need(at, 4)
    const magic = view.getUint32(at, true)
    if (magic >>> 4 === SKIPPABLE_MAGIC_HIGH) {
      need(at, 8)
      at += 8 + view.getUint32(at + 4, true)
      need(at, 0)
      continue
    }
    if (magic !== FRAME_MAGIC) throw new ZstdFrameError('not a zstd frame')
    need(at, 5)
    const descriptor = body[at + 4]!
    if ((descriptor & 0x08) !== 0) throw new ZstdFrameError('a reserved bit is set in a zstd frame header')
    const singleSegment = (descriptor & 0x20) !== 0
    const sizeFlag = descriptor >> 6
    const dictionaryIdBytes = [0, 1, 2, 4][descriptor & 0x03]!
    const contentSizeBytes = sizeFlag === 0 ? (singleSegment ? 1 : 0) : 1 << sizeFlag
    let cursor = at + 5
    let windowBytes = 0
    if (!singleSegment) {
      need(cursor, 1)
      const exponent = body[cursor]! >> 3
      const mantissa = body[cursor]! & 0x07
      const base = 2 ** (10 + exponent)
      windowBytes = base + (base / 8) * mantissa
      cursor += 1
    }
    cursor += dictionaryIdBytes
    need(cursor, contentSizeBytes)
    let contentBytes: number | null = null
    if (contentSizeBytes === 1) contentBytes = body[cursor]!
    else if (contentSizeBytes === 2) contentBytes = view.getUint16(cursor, true) + 256
    else if (contentSizeBytes === 4) contentBytes = view.getUint32(cursor, true)
    else if (contentSizeBytes === 8) contentBytes = Number(view.getBigUint64(cursor, true))
    cursor += contentSizeBytes
    if (singleSegment) windowBytes = contentBytes!
    demands.push({ windowBytes, contentBytes })
    at = skipBlocks(body, cursor, need) + ((descriptor & 0x04) !== 0 ? 4 : 0) // content checksum
    need(at, 0)
  }
  return demands
}

/** Walks a frame's blocks (3-byte headers, RFC 8878 §3.1.1.2) and returns where the last one ends. */
function skipBlocks (body: Uint8Array, at: number, need: (at: number, bytes: number) => void): number {
  for (;;) {
    need(at, 3)
    const header = body[at]! | (body[at + 1]! << 8) | (body[at + 2]! << 16)
    const last = (header & 1) === 1
    const type = (header >> 1) & 0x03
    const size = header >>> 3
    if (type === BLOCK_RLE) at += 3 + 1
    else if (type === BLOCK_RAW || type === BLOCK_COMPRESSED) at += 3 + size
    else throw new ZstdFrameError('a reserved block type in a zstd frame')
    if (last) return at
  }
}

/**
 * Why decoding `body` would take more memory than the proxy allows, or null when it would not: a
 * frame whose declared size is past `limit`, or whose window (outside a single-segment frame, where
 * the window is the content) is past 8 MiB.
 */
export function excessiveDemand (body: Uint8Array, limit: number): string | null {
  for (const { windowBytes, contentBytes } of frameDemands(body)) {
    if (contentBytes !== null && contentBytes > limit) return `a zstd frame of the body declares ${contentBytes} bytes once decoded, more than the ${limit} allowed`
    if (windowBytes > Math.max(contentBytes ?? 0, MAX_WINDOW_BYTES)) return `a zstd frame of the body asks for a ${windowBytes}-byte window; the proxy decodes windows up to ${MAX_WINDOW_BYTES} bytes`
  }
  return null
}
