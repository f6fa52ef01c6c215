import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Pool } from 'undici'
import type { Readable } from 'node:stream'
import { BUFFER_BODIES_UP_TO, bufferBodiesHeld, writeSeveralChunksAtOnce } from '../../plugins/upstream-body.js'
import { callUpstream, ClientGone, type Attempt } from '../../plugins/upstream-call.js'
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
  // An answer that came whole is its bytes; one still coming, those and a stream of the rest.
  const parts: Buffer[] = reply.buffered === null ? [] : [reply.buffered]
  if (reply.stream !== null) for await (const part of reply.stream) parts.push(part as Buffer)
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

test('a body of one buffer goes as a Buffer while such bodies stay within a bound, and what each holds is given back however its answer ends', { timeout: 30_000 }, async (t) => {
  // An upstream that reads each body, then answers as its path says: `/open` starts an event stream
  // and keeps it open until `finish()`, `/fail` a 500, `/whole` a short event stream.
  const received: number[] = []
  const open: Array<() => void> = []
  const server = createServer((request, response) => {
    let length = 0
    request.on('data', (part: Buffer) => { length += part.length })
    request.on('end', () => {
      received.push(length)
      if (request.url === '/fail') return response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"boom"}}')
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      const done = 'event: response.completed\ndata: {"type":"response.completed"}\n\n'
      if (request.url === '/whole') return response.end(`event: response.output_text.delta\ndata: {"delta":"hi"}\n\n${done}`)
      response.write('event: response.output_text.delta\ndata: {"delta":"hi"}\n\n')
      open.push(() => response.end(done))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const pool = new Pool(origin)
  t.after(async () => { await pool.close(); server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  const attempt = (path: string, body: RequestBody, signal = new ClientGone(), holdMs = 0): Attempt =>
    ({ path, method: 'POST', headers: ['content-type', 'application/json'], body, signal, holdMs, blobs: null })
  const drain = async (stream: Readable | null): Promise<void> => { if (stream !== null) for await (const part of stream) assert.ok(part) }
  assert.equal(bufferBodiesHeld(), 0)

  // Three open streams of 7 MiB bodies: two fit the bound as Buffers, the third goes as its chunk.
  const big = Buffer.alloc(7 * 1024 * 1024, 'b')
  const replies = []
  for (let i = 0; i < 3; i++) replies.push(await callUpstream(pool, attempt('/open', RequestBody.of(big)), () => {}))
  assert.equal(bufferBodiesHeld(), 2 * big.length, 'two bodies held as Buffers, the third not')
  assert.ok(2 * big.length <= BUFFER_BODIES_UP_TO && 3 * big.length > BUFFER_BODIES_UP_TO)
  assert.deepEqual(received, [big.length, big.length, big.length], 'every body arrived whole')
  for (const finish of open.splice(0)) finish()
  await Promise.all(replies.map(async (reply) => { await drain(reply.stream) }))
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(bufferBodiesHeld(), 0, 'given back once the answers ended')

  const small = Buffer.alloc(2_000, 's')
  // A failure's body read to judge it.
  const failed = await callUpstream(pool, attempt('/fail', RequestBody.of(small)), () => {})
  assert.equal(failed.status, 500)
  // A short answer held whole before it goes out.
  const whole = await callUpstream(pool, attempt('/whole', RequestBody.of(small), new ClientGone(), 50), () => {})
  assert.equal(whole.stream, null)
  // A client that leaves during the stream: the answer is let go.
  const gone = new ClientGone()
  const leaving = await callUpstream(pool, attempt('/open', RequestBody.of(small), gone), () => {})
  leaving.stream!.destroy()
  gone.abort()
  // An upstream that cannot be reached.
  const closed = new Pool('http://127.0.0.1:1')
  await assert.rejects(callUpstream(closed, attempt('/open', RequestBody.of(small)), () => {}))
  await closed.close()
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(bufferBodiesHeld(), 0, 'nothing left counted after a failure, a whole answer, a client leaving and an unreachable upstream')
  for (const finish of open.splice(0)) finish()
})
