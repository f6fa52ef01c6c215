import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Pool } from 'undici'
import { writeSeveralChunksAtOnce } from '../../plugins/upstream-body.js'
import { callUpstream, ClientGone } from '../../plugins/upstream-call.js'
import { RequestBody } from '../../src/wire/request-body.js'

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

/** An upstream that answers each body's length and hash. */
async function startEcho (): Promise<{ origin: string, close: () => Promise<void> }> {
  const server = createServer((request, response) => {
    const parts: Buffer[] = []
    request.on('data', (part: Buffer) => parts.push(part))
    request.on('end', () => {
      const body = Buffer.concat(parts)
      response.end(JSON.stringify({ length: body.length, sha: sha(body) }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

type Writes = (chunk: Buffer | null, size: number) => void

/** Records each write call (a `writev` counts once) undici's sockets make, per request, from the moment undici names the socket. */
function countWrites (): { perRequest: number[][], stop: () => void } {
  const perRequest: number[][] = []
  const wrapped = new WeakSet<Socket>()
  const onSendHeaders = (message: unknown): void => {
    const { socket } = message as { socket: Socket & { _write: Writes, _writev: Writes } }
    const sizes: number[] = []
    perRequest.push(sizes)
    if (wrapped.has(socket)) return
    wrapped.add(socket)
    const target = socket as unknown as Record<string, (...args: unknown[]) => unknown>
    const write = target._write!.bind(socket)
    const writev = target._writev!.bind(socket)
    target._write = (chunk, encoding, done) => { perRequest.at(-1)!.push(Buffer.byteLength(chunk as Buffer | string)); return write(chunk, encoding, done) }
    target._writev = (chunks, done) => {
      perRequest.at(-1)!.push((chunks as Array<{ chunk: Buffer | string }>).reduce((sum, { chunk }) => sum + Buffer.byteLength(chunk), 0))
      return writev(chunks, done)
    }
  }
  subscribe('undici:client:sendHeaders', onSendHeaders)
  return { perRequest, stop: () => unsubscribe('undici:client:sendHeaders', onSendHeaders) }
}

async function send (pool: Pool, body: RequestBody): Promise<{ length: number, sha: string }> {
  const attempt = { path: '/', method: 'POST' as const, headers: ['content-type', 'application/json'], body, signal: new ClientGone(), holdMs: 0, blobs: null }
  const reply = await callUpstream(pool, attempt, () => {})
  assert.equal(reply.status, 200)
  const parts: Buffer[] = []
  for await (const part of reply.stream!) parts.push(part as Buffer)
  return JSON.parse(Buffer.concat(parts).toString('utf8')) as { length: number, sha: string }
}

test('a body of several chunks goes upstream in one write; chunks that overflow the socket\'s buffer still arrive whole, in order', { timeout: 30_000 }, async (t) => {
  writeSeveralChunksAtOnce()
  const echo = await startEcho()
  const pool = new Pool(echo.origin)
  const writes = countWrites()
  t.after(async () => { writes.stop(); await pool.close(); await echo.close() })

  // A translated body's shape: its structure as text between the client's long strings as bytes.
  const small = ['{"instructions":"é ', Buffer.alloc(12_000, 'i'), '","input":"漢字 ', Buffer.alloc(24_000, 'o'), '"}']
  const joined = Buffer.concat(small.map((part) => typeof part === 'string' ? Buffer.from(part) : part))
  assert.deepEqual(await send(pool, new RequestBody(small)), { length: joined.length, sha: sha(joined) })
  assert.equal(writes.perRequest.at(-1)!.length, 1, `one write for the head and every chunk: ${writes.perRequest.at(-1)!.join(', ')}`)
  assert.ok(writes.perRequest.at(-1)![0]! > joined.length, 'the head went with the chunks')

  // Megabytes: undici waits for the socket to drain between chunks, and the socket is never left corked.
  const large = Array.from({ length: 24 }, (_, i) => Buffer.alloc(100_000 + i, String.fromCharCode(97 + i)))
  const all = Buffer.concat(large)
  assert.deepEqual(await send(pool, new RequestBody(large)), { length: all.length, sha: sha(all) })

  // One chunk is written as before, head and chunk together; and the socket serves the next request.
  const one = Buffer.alloc(5_000, 'z')
  assert.deepEqual(await send(pool, RequestBody.of(one)), { length: one.length, sha: sha(one) })
  assert.equal(writes.perRequest.at(-1)!.length, 1)
})

test('a body still being written when its answer comes arrives whole', { timeout: 30_000 }, async (t) => {
  writeSeveralChunksAtOnce()
  // An upstream that answers at once and reads the body only when told to.
  let readBody: () => Promise<Buffer> = async () => await Promise.reject(new Error('no request'))
  const server = createServer((request, response) => {
    request.pause()
    response.writeHead(200, { 'content-type': 'application/octet-stream' })
    response.write('started')
    readBody = async () => {
      const parts: Buffer[] = []
      request.on('data', (part: Buffer) => parts.push(part))
      request.resume()
      await new Promise((resolve) => request.once('end', resolve))
      response.end()
      return Buffer.concat(parts)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.after(async () => { await pool.close(); server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })

  // More than the loopback socket's buffers take: most of it waits in the client's socket.
  const bytes = Buffer.alloc(64 * 1024 * 1024, 'w')
  const body = RequestBody.of(bytes)
  const reply = await callUpstream(pool, { path: '/', method: 'POST', headers: [], body, signal: new ClientGone(), holdMs: 0, blobs: null }, () => {})
  assert.equal(reply.status, 200)
  const received = await readBody()
  assert.equal(received.length, bytes.length)
  assert.ok(received.every((byte) => byte === 0x77), 'every byte arrived as it was')
  for await (const part of reply.stream!) assert.ok(part)
})
