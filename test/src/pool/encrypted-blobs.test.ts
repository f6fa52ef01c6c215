import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BlobLearner, BlobOwners, blobFingerprint, blobsIn, scanBlobs, withoutBlobs } from '../../../src/pool/encrypted-blobs.js'

const blob = (n: number): string => `gAAAAB${'x'.repeat(40)}${n}/+=`

test('blobs are found by a byte scan, with or without spaces, escaped or not; null values are skipped', () => {
  const body = Buffer.from(`{"input":[{"type":"reasoning","encrypted_content":"${blob(1)}"},{"type":"compaction","encrypted_content" : "${blob(2).replace('/', '\\/')}"},{"type":"reasoning","encrypted_content":null}]}`)
  assert.deepEqual(blobsIn(body), [blobFingerprint(blob(1)), blobFingerprint(blob(2))], 'an escaped slash is the same blob')
  assert.equal(scanBlobs(Buffer.from('{"encrypted_content":"unfinished'), () => {}), 1, 'an open value is reported where its field starts')
})

test('the learner finds blobs cut anywhere by chunk seams, each once', () => {
  const event = `event: response.output_item.done\ndata: {"type":"response.output_item.done","item":{"type":"reasoning","encrypted_content":"${blob(7)}"}}\n\n`
  const text = Buffer.from(event.repeat(3))
  for (let cut = 1; cut < text.length; cut += 7) {
    const seen: string[] = []
    const learner = new BlobLearner((fingerprint) => { seen.push(fingerprint) })
    learner.push(text.subarray(0, cut))
    learner.push(text.subarray(cut))
    assert.deepEqual(seen, Array(3).fill(blobFingerprint(blob(7))), `cut at ${cut}`)
  }
})

test('withoutBlobs drops exactly the chosen blobs: bound items go, encrypted parts leave their lists', () => {
  const foreign = blobFingerprint(blob(1))
  const body = Buffer.from(JSON.stringify({
    model: 'm',
    input: [
      { type: 'reasoning', encrypted_content: blob(1) },
      { type: 'reasoning', encrypted_content: blob(2) },
      { type: 'compaction_summary', encrypted_content: blob(1) },
      { type: 'function_call_output', call_id: 'c', output: [{ type: 'encrypted_content', encrypted_content: blob(1) }] },
      { type: 'agent_message', content: [{ type: 'encrypted_content', encrypted_content: blob(1) }, { type: 'input_text', text: 'kept' }] },
      { type: 'agent_message', content: [{ type: 'encrypted_content', encrypted_content: blob(1) }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] }
    ]
  }))
  const result = withoutBlobs(body, (fingerprint) => fingerprint === foreign)
  assert.ok(result !== null)
  assert.equal(result.dropped, 5)
  assert.deepEqual(JSON.parse(result.body.toString()).input, [
    { type: 'reasoning', encrypted_content: blob(2) },
    { type: 'function_call_output', call_id: 'c', output: '' },
    { type: 'agent_message', content: [{ type: 'input_text', text: 'kept' }] },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] }
  ])
  assert.equal(withoutBlobs(body, () => false), null, 'nothing to drop: the body is left as it is')
  assert.equal(withoutBlobs(Buffer.from('not json'), () => true), null)
})

test('blob owners are bounded and tell foreign blobs from own and unknown ones', () => {
  const owners = new BlobOwners(2)
  owners.set('f1', 'a')
  owners.set('f2', 'b')
  owners.set('f3', 'b')
  assert.equal(owners.size, 2)
  assert.equal(owners.peek('f1'), undefined, 'the oldest is forgotten')
  assert.equal(owners.anyForeign(['f2', 'unknown'], 'b'), false)
  assert.equal(owners.anyForeign(['f2', 'f3'], 'a'), true)
})
