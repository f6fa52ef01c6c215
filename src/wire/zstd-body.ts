import zlib from 'node:zlib'
import { Decompress } from 'fzstd'
import { ownBytes } from './request-body.js'
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

type ZstdDecompress = (buffer: Buffer, options: { maxOutputLength: number, chunkSize: number }, callback: (err: Error | null, result: Buffer) => void) => void

/**
 * Node's own zstd (Node 22.15 and later), run on libuv's threads: a 2 MB Codex body costs about
 * 3 ms of CPU there, 1.4 of them on the event loop, where fzstd takes 9 ms, all on the event loop
 * (every stream waits meanwhile). Node 20 has none: fzstd decodes there.
 */
const nativeDecompress = (zlib as unknown as { zstdDecompress?: ZstdDecompress }).zstdDecompress

/**
 * Decodes a zstd body, refusing (without ever holding more) one that grows past `limit` bytes:
 * a few kilobytes of zstd can claim gigabytes, in output or in the window its frames ask for.
 */
export async function decodeZstdBody (compressed: Buffer, limit: number): Promise<Buffer> {
  let excess: string | null
  try {
    excess = excessiveDemand(compressed, limit)
  } catch (err) {
    if (!(err instanceof ZstdFrameError)) throw err
    throw new ZstdBodyError('corrupt', `the zstd request body cannot be decoded (${err.message})`)
  }
  if (excess !== null) throw new ZstdBodyError('too_large', excess)
  if (compressed.length === 0) return Buffer.alloc(0)
  return nativeDecompress === undefined ? decodeWithFzstd(compressed, limit) : await decodeNatively(nativeDecompress, compressed, limit)
}

/** The pieces Node's zstd decodes in: about eight times the compressed size (Codex's text packs 3 to 8 times), within these bounds. */
const MIN_PIECE = 64 * 1024
const MAX_PIECE = 1024 * 1024

function decodeNatively (decompress: ZstdDecompress, compressed: Buffer, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Decoded in pieces of `chunkSize`, each a round trip between the thread and the event loop:
    // Node's default (16 KiB) makes a 2 MB body cost three times the CPU of a few large pieces.
    const chunkSize = Math.min(MAX_PIECE, Math.max(MIN_PIECE, 8 * compressed.length))
    decompress(compressed, { maxOutputLength: limit, chunkSize }, (err, result) => {
      // A body smaller than one piece comes back as a view into that piece: kept at its own size.
      if (err === null) resolve(ownBytes(result))
      else if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') reject(tooLarge(limit))
      else reject(new ZstdBodyError('corrupt', `the zstd request body cannot be decoded (${err.message})`))
    })
  })
}

function decodeWithFzstd (compressed: Buffer, limit: number): Buffer {
  const chunks: Uint8Array[] = []
  let size = 0
  let ended = false
  const decoder = new Decompress((chunk, final) => {
    size += chunk.length
    if (size > limit) throw tooLarge(limit)
    chunks.push(chunk)
    if (final === true) ended = true
  })
  try {
    decoder.push(compressed, true)
  } catch (err) {
    if (err instanceof ZstdBodyError) throw err
    throw new ZstdBodyError('corrupt', `the zstd request body cannot be decoded (${(err as Error).message})`)
  }
  if (!ended) throw new ZstdBodyError('corrupt', 'the zstd request body is truncated')
  return Buffer.concat(chunks, size)
}

function tooLarge (limit: number): ZstdBodyError {
  return new ZstdBodyError('too_large', `the request body is larger than ${limit} bytes once decoded`)
}
