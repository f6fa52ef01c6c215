import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ReusedBuffers } from '../../../src/wire/reused-buffers.js'

test('a buffer given back is handed out again for a body of its size class, never while it is out', () => {
  const buffers = new ReusedBuffers(1024 * 1024)
  const first = buffers.take(40_000)
  assert.equal(first.length, 40_000)
  first.fill(1)
  const second = buffers.take(40_000)
  assert.notEqual(second.buffer, first.buffer, 'a buffer still out is not handed out twice')
  buffers.giveBack(first)
  assert.equal(buffers.idle, 64 * 1024)
  const third = buffers.take(50_000)
  assert.equal(third.buffer, first.buffer, 'the same memory, reused')
  assert.equal(third.length, 50_000)
  assert.equal(buffers.idle, 0)
  const small = buffers.take(5_000)
  assert.notEqual(small.buffer, first.buffer, 'another size class has its own buffers')
  assert.equal(small.buffer.byteLength, 16 * 1024)
})

test('giving back twice, or a buffer not handed out here, changes nothing', () => {
  const buffers = new ReusedBuffers(1024 * 1024)
  const taken = buffers.take(1000)
  buffers.giveBack(taken)
  buffers.giveBack(taken)
  assert.equal(buffers.idle, 16 * 1024, 'kept once')
  const a = buffers.take(1000)
  const b = buffers.take(1000)
  assert.notEqual(a.buffer, b.buffer, 'two takers never share memory')
  buffers.giveBack(Buffer.allocUnsafeSlow(16 * 1024))
  buffers.giveBack(Buffer.from('not ours'))
  assert.equal(buffers.idle, 0)
})

test('free memory kept stays under its bound, and very large bodies get memory of their own', () => {
  const buffers = new ReusedBuffers(3 * 64 * 1024)
  const taken = Array.from({ length: 5 }, () => buffers.take(60_000))
  for (const buffer of taken) buffers.giveBack(buffer)
  assert.equal(buffers.idle, 3 * 64 * 1024, 'three kept, two let go')
  const large = buffers.take(3 * 1024 * 1024)
  assert.equal(large.length, 3 * 1024 * 1024)
  buffers.giveBack(large)
  assert.equal(buffers.idle, 3 * 64 * 1024, 'not kept')
})
