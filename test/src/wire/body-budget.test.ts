import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { PassThrough } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import { readRequestBody } from '../../../src/wire/body-budget.js'
import { CHUNKED_UP_TO } from '../../../src/wire/request-body.js'

function send (...chunks: Buffer[]): PassThrough {
  const stream = new PassThrough()
  for (const chunk of chunks) stream.write(chunk)
  stream.end()
  return stream
}

test('a body is kept as the chunks it came in, never joined; small chunks are gathered; a view into a larger buffer is copied, so it does not keep that buffer alive', async () => {
  // Buffer.alloc, not Buffer.from: small Buffer.from values share one pooled buffer.
  const text = '{"model":"x","input":[]}'
  const own = Buffer.alloc(text.length, text)
  const whole = await readRequestBody(send(own), own.length, 1024)
  assert.equal(whole.whole().toString(), text)
  const first = Buffer.alloc(20_000, 'a')
  const second = Buffer.alloc(30_000, 'b')
  const parts = await readRequestBody(send(first, second), 50_000, 100_000)
  assert.deepEqual(parts.chunks, [first, second], 'kept as they came, not joined')
  assert.equal(parts.chunks[0], first)
  assert.equal(parts.length, 50_000)
  // A client writing a few bytes at a time: gathered into pieces, not held as 2,000 buffers.
  const drips = Array.from({ length: 2000 }, (_, i) => Buffer.alloc(50, i % 26 + 97))
  const dripped = await readRequestBody(send(...drips), 100_000, 200_000)
  assert.ok(dripped.chunks.length <= 2, `${dripped.chunks.length} chunks`)
  assert.ok(dripped.whole().equals(Buffer.concat(drips)))
  const larger = Buffer.alloc(270_000, 'padding{"model":"x"}padding')
  const view = larger.subarray(7, 40_000)
  const fromView = await readRequestBody(send(view), view.length, 100_000)
  assert.notEqual(fromView.chunks[0], view)
  assert.notEqual((fromView.chunks[0] as Buffer).buffer, larger.buffer, 'copied out of the larger buffer')
  assert.ok(fromView.whole().equals(view))
  assert.equal((await readRequestBody(send(Buffer.from('{"a":'), Buffer.from('1}')), null, 1024)).whole().toString(), '{"a":1}')
  const one = await readRequestBody(send(first, second), 50_000, 100_000, { oneBuffer: true })
  assert.equal(one.chunks.length, 1, 'one buffer when the caller asks for it')
  assert.equal(one.whole().toString(), first.toString() + second.toString())
  assert.equal((await readRequestBody(send(own), own.length, 1024, { oneBuffer: true })).whole(), own, 'a body that came whole in one chunk of its own is taken as it is')
})

test('a body of unknown length is given chunk by chunk to the counter, which may refuse it; a declared length is not counted here', async () => {
  const counted: number[] = []
  const refusal = Object.assign(new Error('no room'), { statusCode: 503 })
  const countChunk = (bytes: number): Error | null => {
    counted.push(bytes)
    return counted.length === 2 ? refusal : null
  }
  await assert.rejects(readRequestBody(send(Buffer.from('abc'), Buffer.from('defgh'), Buffer.from('ij')), null, 1024, { countChunk }), (err) => err === refusal)
  assert.deepEqual(counted, [3, 5], 'counted as the chunks came, until the refusal')
  counted.length = 0
  const declared = await readRequestBody(send(Buffer.from('abc'), Buffer.from('defgh')), 8, 1024, { countChunk })
  assert.equal(declared.whole().toString(), 'abcdefgh')
  assert.deepEqual(counted, [], 'a declared length was reserved before the body, not counted again')
})

test('a body bigger than CHUNKED_UP_TO is copied into one buffer of its own as it arrives (joined at its end when its length was not declared)', async () => {
  const size = CHUNKED_UP_TO + 1024
  const pieces = Array.from({ length: Math.ceil(size / 65536) }, (_, i) => Buffer.alloc(Math.min(65536, size - i * 65536), i % 251))
  const body = await readRequestBody(send(...pieces), size, 2 * CHUNKED_UP_TO)
  assert.equal(body.chunks.length, 1)
  assert.equal(body.length, size)
  assert.ok(body.whole().equals(Buffer.concat(pieces)))
  const small = await readRequestBody(send(...pieces.slice(0, 3)), 3 * 65536, 2 * CHUNKED_UP_TO)
  assert.equal(small.chunks.length, 3, 'a smaller one stays in its chunks')
  const unknownLength = await readRequestBody(send(...pieces), null, 2 * CHUNKED_UP_TO)
  assert.equal(unknownLength.chunks.length, 1, 'one of no declared length is joined once it is over the size')
  assert.ok(unknownLength.whole().equals(Buffer.concat(pieces)))
})

test('a body longer or shorter than declared gets 400, one over the limit 413', async () => {
  await assert.rejects(readRequestBody(send(Buffer.from('12345')), 4, 1024), { statusCode: 400 })
  await assert.rejects(readRequestBody(send(Buffer.from('123')), 4, 1024), { statusCode: 400 })
  await assert.rejects(readRequestBody(send(Buffer.alloc(2048)), null, 1024), { statusCode: 413 })
  await assert.rejects(readRequestBody(send(Buffer.alloc(10)), 2048, 1024), { statusCode: 413 })
})

test('a body that came in the same read as its headers is taken from the request at once, without flowing mode; one that came later is read as it comes', async (t) => {
  const taken: Array<{ text: string, flowing: boolean | null }> = []
  const server = createServer((req, res) => {
    // As Fastify does: the body asked for while the read that brought the headers is still being parsed.
    readRequestBody(req, Number(req.headers['content-length']), 1024).then((body) => {
      taken.push({ text: body.whole().toString(), flowing: req.readableFlowing })
      res.end()
    }, (err: Error) => { res.writeHead(500).end(err.message) })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.after(() => { server.close() })
  const { port } = server.address() as AddressInfo
  const post = (parts: string[]): Promise<void> => new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      void (async () => {
        for (const part of parts) {
          socket.write(part)
          await delay(50)
        }
      })()
    })
    socket.once('data', () => {
      socket.destroy()
      resolve()
    }).once('error', reject)
  })
  const body = '{"model":"x","input":[]}'
  const head = `POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n`
  await post([head + body])
  await post([head + body.slice(0, 10), body.slice(10)])
  assert.deepEqual(taken, [{ text: body, flowing: null }, { text: body, flowing: true }])
})
