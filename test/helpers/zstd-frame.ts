/**
 * Valid zstd frames built by hand (fzstd only decodes, Node 20's zlib has no zstd): raw blocks
 * carry bytes as they are, RLE blocks repeat one byte — enough to send real zstd bodies and to
 * build a zip bomb (a few bytes per 128 KiB block).
 */
const MAGIC = [0x28, 0xb5, 0x2f, 0xfd]
const MAX_BLOCK = 128 * 1024

function blockHeader (last: boolean, type: 0 | 1, size: number): Buffer {
  const value = (last ? 1 : 0) | (type << 1) | (size << 3)
  return Buffer.from([value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff])
}

/** Frame header: no content size, no checksum, single segment off, window 8 MiB. */
function frameHeader (): Buffer {
  return Buffer.from([...MAGIC, 0x00, 0x68])
}

/** `data` as a zstd frame of raw blocks. */
export function zstdFrame (data: Buffer): Buffer {
  const parts = [frameHeader()]
  let at = 0
  do {
    const block = data.subarray(at, at + MAX_BLOCK)
    at += block.length
    parts.push(blockHeader(at >= data.length, 0, block.length), block)
  } while (at < data.length)
  return Buffer.concat(parts)
}

/** `size` copies of one byte, in RLE blocks: ~4 bytes per 128 KiB once decoded. */
export function zstdBomb (size: number, byte = 0x20): Buffer {
  const parts = [frameHeader()]
  let left = size
  while (left > 0) {
    const n = Math.min(left, MAX_BLOCK)
    left -= n
    parts.push(blockHeader(left === 0, 1, n), Buffer.from([byte]))
  }
  return Buffer.concat(parts)
}
