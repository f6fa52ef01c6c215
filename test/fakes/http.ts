import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import * as zlib from 'node:zlib'
import { decompress } from 'fzstd'

export async function readBody (req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** Undoes a request `content-encoding`; throws for one this Node cannot decode. */
export function decodeBody (raw: Buffer, encoding: string | undefined): Buffer {
  switch ((encoding ?? 'identity').trim().toLowerCase()) {
    case 'identity': case '': return raw
    case 'gzip': return zlib.gunzipSync(raw)
    case 'deflate': return zlib.inflateSync(raw)
    case 'br': return zlib.brotliDecompressSync(raw)
    case 'zstd': return Buffer.from(decompress(raw)) // Node 20's zlib has no zstd
    default: throw new Error(`unsupported content-encoding ${encoding}`)
  }
}

export function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

export function sendHtml (res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html) })
  res.end(html)
}

/** Waits, unless the fake is closing (then it rejects with an AbortError). */
export async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  if (ms > 0) await delay(ms, undefined, { signal })
}

/** Writes a chunk and waits until it has left for the socket. */
export async function writeFlushed (res: ServerResponse, chunk: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    res.write(chunk, (err) => { if (err) reject(err); else resolve() })
  })
}
