import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { readWholeBody } from '../../../src/wire/body-budget.js'

function send (...chunks: Buffer[]): PassThrough {
  const stream = new PassThrough()
  for (const chunk of chunks) stream.write(chunk)
  stream.end()
  return stream
}

test('a body that came whole in one chunk of its own memory is taken as it is; any other is copied into one buffer', async () => {
  // Buffer.alloc, not Buffer.from: small Buffer.from values share one pooled buffer.
  const text = '{"model":"x","input":[]}'
  const own = Buffer.alloc(text.length, text)
  assert.equal(await readWholeBody(send(own), own.length, 1024), own, 'not copied')
  // A view into a larger buffer would keep that buffer alive: copied.
  const larger = Buffer.from('padding{"model":"x"}padding')
  const view = larger.subarray(7, 20)
  const fromView = await readWholeBody(send(view), view.length, 1024)
  assert.notEqual(fromView, view)
  assert.equal(fromView.toString(), '{"model":"x"}')
  const joined = await readWholeBody(send(Buffer.from('{"a":'), Buffer.from('1}')), 7, 1024)
  assert.equal(joined.toString(), '{"a":1}')
  assert.equal((await readWholeBody(send(Buffer.from('{"a":'), Buffer.from('1}')), null, 1024)).toString(), '{"a":1}')
})

test('a body longer or shorter than declared gets 400, one over the limit 413', async () => {
  await assert.rejects(readWholeBody(send(Buffer.from('12345')), 4, 1024), { statusCode: 400 })
  await assert.rejects(readWholeBody(send(Buffer.from('123')), 4, 1024), { statusCode: 400 })
  await assert.rejects(readWholeBody(send(Buffer.alloc(2048)), null, 1024), { statusCode: 413 })
  await assert.rejects(readWholeBody(send(Buffer.alloc(10)), 2048, 1024), { statusCode: 413 })
})
