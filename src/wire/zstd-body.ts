import { Decompress } from 'fzstd'
import { excessiveDemand, ZstdFrameError } from './zstd-frames.js'

/**
 * Codex's built-in provider sends `/responses` bodies zstd-compressed (protocol §5.6). Node 20's
 * zlib has no zstd, so fzstd decodes them: the proxy must read inside a body (conversation keys,
 * encrypted blobs) and re-send it to other accounts, and the backend takes it plain as well.
 */

/** Is this `content-encoding` zstd (the only encoding the proxy decodes)? */
export function isZstd (encoding: string | string[] | undefined): boolean {
  return typeof encoding === 'string' && encoding.trim().toLowerCase() === 'zstd'
}

export class ZstdBodyError extends Error {
  constructor (readonly reason: 'corrupt' | 'too_large', message: string) {
    super(message)
    this.name = 'ZstdBodyError'
  }
}

/**
 * Decodes a zstd body, refusing (without ever holding more) one that grows past `limit` bytes:
 * a few kilobytes of zstd can claim gigabytes, in output or in the window its frames ask for.
 */
export function decodeZstdBody (compressed: Buffer, limit: number): Buffer {
  let excess: string | null
  try {
    excess = excessiveDemand(compressed, limit)
  } catch (err) {
    if (!(err instanceof ZstdFrameError)) throw err
    throw new ZstdBodyError('corrupt', `the zstd request body cannot be decoded (${err.message})`)
  }
  if (excess !== null) throw new ZstdBodyError('too_large', excess)
  const chunks: Uint8Array[] = []
  let size = 0
  let ended = false
  const decoder = new Decompress((chunk, final) => {
    size += chunk.length
    if (size > limit) throw new ZstdBodyError('too_large', `the request body is larger than ${limit} bytes once decoded`)
    chunks.push(chunk)
    if (final === true) ended = true
  })
  try {
    decoder.push(compressed, true)
  } catch (err) {
    if (err instanceof ZstdBodyError) throw err
    throw new ZstdBodyError('corrupt', `the zstd request body cannot be decoded (${(err as Error).message})`)
  }
  if (!ended && compressed.length > 0) throw new ZstdBodyError('corrupt', 'the zstd request body is truncated')
  return Buffer.concat(chunks, size)
}
