import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RequestBody } from '../../../src/wire/request-body.js'
import { carriesBlobs } from '../../../src/pool/encrypted-blobs.js'
import { conversationKey, requestModel } from '../../../src/pool/conversation-affinity.js'

/** The text cut into chunks at the given offsets. */
function cut (text: string, ...at: number[]): RequestBody {
  const bytes = Buffer.from(text)
  const bounds = [0, ...at, bytes.length]
  return new RequestBody(bounds.slice(1).map((end, i) => Buffer.from(bytes.subarray(bounds[i], end))))
}

const BODY = '{"model":"gpt-5-codex","prompt_cache_key":"conv-1","input":[{"type":"reasoning","encrypted_content":"gAAAA"}]}'

test('a pattern is found wherever the chunks are cut, across a seam too, and at the same offset as in the whole body', () => {
  for (const pattern of ['"encrypted_content"', '"prompt_cache_key"', '"model"', 'absent']) {
    const expected = Buffer.from(BODY).indexOf(pattern)
    for (let a = 1; a < BODY.length - 1; a++) {
      for (const b of [a + 1, a + 19, BODY.length - 1]) {
        if (b <= a || b >= BODY.length) continue
        const body = cut(BODY, a, b)
        const longEnough = body.chunks.every((chunk) => chunk.length >= pattern.length)
        assert.equal(body.indexOf(Buffer.from(pattern)), expected, `${pattern} with cuts at ${a} and ${b}`)
        if (longEnough) assert.equal(body.chunks.length, 3, 'searching did not join the chunks')
      }
    }
  }
})

test('a pattern spread over three chunks (one shorter than the pattern) is found too', () => {
  const at = BODY.indexOf('"encrypted_content"')
  const body = cut(BODY, at + 3, at + 8)
  assert.equal(body.indexOf(Buffer.from('"encrypted_content"')), at)
})

test('slices within a chunk are views, across chunks copies; whole() joins once and keeps the joined body', () => {
  const body = cut(BODY, 10, 40)
  const inside = body.slice(12, 30)
  assert.equal(inside.toString(), BODY.slice(12, 30))
  assert.equal(inside.buffer, (body.chunks[1] as Buffer).buffer, 'a view')
  assert.equal(body.chunks.length, 3)
  assert.equal(body.slice(5, 50).toString(), BODY.slice(5, 50))
  assert.equal(body.chunks.length, 3, 'a slice across chunks copies only its own bytes')
  for (let start = 0; start < BODY.length; start += 7) {
    for (const end of [start + 1, start + 31, start + 200]) assert.equal(body.slice(start, end).toString(), BODY.slice(start, end), `${start}–${end}`)
  }
  assert.equal(body.slice(100, 10_000).toString(), BODY.slice(100))
  const whole = body.whole()
  assert.equal(whole.toString(), BODY)
  assert.deepEqual(body.chunks, [whole])
  assert.equal(body.whole(), whole, 'joined once')
  assert.equal(body.length, Buffer.byteLength(BODY))
})

test('the conversation, the model and the encrypted items are read from a body in chunks as from one buffer', () => {
  for (const at of [3, 20, 45, 60, 80, 100]) {
    const body = cut(BODY, at)
    assert.equal(conversationKey({}, body), 'conv-1', `cut at ${at}`)
    assert.equal(requestModel(body), 'gpt-5-codex', `cut at ${at}`)
    assert.equal(carriesBlobs(body), true, `cut at ${at}`)
  }
  assert.equal(carriesBlobs(cut('{"input":[]}', 4)), false)
})

test('a short first or last chunk (a socket\'s last read) does not make the search join the body', () => {
  const body = cut(BODY, 2, BODY.length - 3)
  assert.equal(body.indexOf(Buffer.from('absent-pattern')), -1)
  assert.equal(body.chunks.length, 3)
})

test('a body written as text and bytes (a translated request): its length in bytes, searched and sliced as the joined bytes', () => {
  const parts = ['{"model":"gpt-5-codex","instructions":"é ', Buffer.from('漢字 long text'), '","prompt_cache_key":"conv-1"}']
  const bytes = Buffer.concat(parts.map((part) => typeof part === 'string' ? Buffer.from(part) : part))
  const body = new RequestBody(parts)
  assert.equal(body.length, bytes.length, 'bytes, not characters')
  assert.equal(body.indexOf(Buffer.from('"prompt_cache_key"')), bytes.indexOf('"prompt_cache_key"'))
  assert.equal(conversationKey({}, body), 'conv-1')
  assert.ok(body.slice(3, 60).equals(bytes.subarray(3, 60)))
  assert.ok(body.whole().equals(bytes))
  assert.equal(body.chunks.length, 1, 'joined once, then kept so')
})
