import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { CHUNKED_UP_TO, readRequestBody } from '../../../src/wire/body-budget.js'

function send (...chunks: Buffer[]): PassThrough {
  const stream = new PassThrough()
  for (const chunk of chunks) stream.write(chunk)
  stream.end()
  return stream
}

test('a body is kept as the chunks it came in, never joined; a view into a larger buffer is copied, so it does not keep that buffer alive', async () => {
  // Buffer.alloc, not Buffer.from: small Buffer.from values share one pooled buffer.
  const text = '{"model":"x","input":[]}'
  const own = Buffer.alloc(text.length, text)
  const whole = await readRequestBody(send(own), own.length, 1024)
  assert.equal(whole.chunks[0], own, 'not copied')
  assert.equal(whole.whole(), own, 'one chunk is the body itself')
  const first = Buffer.alloc(5, '{"a":')
  const second = Buffer.alloc(2, '1}')
  const parts = await readRequestBody(send(first, second), 7, 1024)
  assert.deepEqual(parts.chunks, [first, second], 'kept as they came, not joined')
  assert.equal(parts.chunks[0], first)
  assert.equal(parts.length, 7)
  assert.equal(parts.whole().toString(), '{"a":1}')
  const larger = Buffer.alloc(270, 'padding{"model":"x"}padding')
  const view = larger.subarray(7, 20)
  const fromView = await readRequestBody(send(view), view.length, 1024)
  assert.notEqual(fromView.chunks[0], view)
  assert.notEqual(fromView.chunks[0]!.buffer, larger.buffer, 'copied out of the larger buffer')
  assert.equal(fromView.whole().toString(), '{"model":"x"}')
  assert.equal((await readRequestBody(send(Buffer.from('{"a":'), Buffer.from('1}')), null, 1024)).whole().toString(), '{"a":1}')
})

test('a body bigger than CHUNKED_UP_TO is copied into one buffer of its own as it arrives', async () => {
  const size = CHUNKED_UP_TO + 1024
  const pieces = Array.from({ length: Math.ceil(size / 65536) }, (_, i) => Buffer.alloc(Math.min(65536, size - i * 65536), i % 251))
  const body = await readRequestBody(send(...pieces), size, 2 * CHUNKED_UP_TO)
  assert.equal(body.chunks.length, 1)
  assert.equal(body.length, size)
  assert.ok(body.whole().equals(Buffer.concat(pieces)))
  const small = await readRequestBody(send(...pieces.slice(0, 3)), 3 * 65536, 2 * CHUNKED_UP_TO)
  assert.equal(small.chunks.length, 3, 'a smaller one stays in its chunks')
})

test('a body longer or shorter than declared gets 400, one over the limit 413', async () => {
  await assert.rejects(readRequestBody(send(Buffer.from('12345')), 4, 1024), { statusCode: 400 })
  await assert.rejects(readRequestBody(send(Buffer.from('123')), 4, 1024), { statusCode: 400 })
  await assert.rejects(readRequestBody(send(Buffer.alloc(2048)), null, 1024), { statusCode: 413 })
  await assert.rejects(readRequestBody(send(Buffer.alloc(10)), 2048, 1024), { statusCode: 413 })
})
