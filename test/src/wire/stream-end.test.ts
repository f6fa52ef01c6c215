import { test } from 'node:test'
import assert from 'node:assert/strict'
import { streamEnd } from '../../../src/wire/stream-end.js'

test('only an upstream that broke blames its account; an answer cut short by the client is the client leaving', () => {
  assert.equal(streamEnd(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }), false), 'upstream_broke')
  // The upstream had ended and the last bytes were still on their way when the client closed.
  assert.equal(streamEnd(null, false), 'client_left')
  assert.equal(streamEnd(null, true), 'complete')
})
