import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConversationMemory } from '../../../src/pool/conversation-memory.js'
import { blobFingerprint } from '../../../src/pool/encrypted-blobs.js'
import { RequestBody } from '../../../src/wire/request-body.js'

/** A body that records what it is searched for. */
class WatchedBody extends RequestBody {
  readonly searches: string[] = []

  override indexOf (pattern: Buffer): number {
    this.searches.push(pattern.toString('utf8'))
    return super.indexOf(pattern)
  }
}

const BLOB = 'gAAAA-made-by-first'
const turn = (): WatchedBody => new WatchedBody([Buffer.from(JSON.stringify({
  model: 'gpt-5-codex',
  prompt_cache_key: 'conv-1',
  input: [{ type: 'reasoning', summary: [], encrypted_content: BLOB }, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'next' }] }]
}))])
const blobSearches = (body: WatchedBody): number => body.searches.filter((pattern) => pattern === '"encrypted_content"').length

test('a conversation that stays on its account is sent as it is without searching its body for blobs; the search is made once, when asked', () => {
  const memory = new ConversationMemory()
  memory.learn({ kind: 'conversation', key: 'conv-1', account: 'first' })
  memory.learn({ kind: 'blob', key: blobFingerprint(BLOB), account: 'first' })

  const body = turn()
  const request = memory.forRequest({}, body)
  assert.equal(request.prefer, 'first')
  assert.equal(request.bodyFor('first'), body)
  assert.equal(blobSearches(body), 0, 'never searched for blobs')
  assert.equal(request.carriesBlobs, true)
  assert.equal(request.carriesBlobs, true)
  assert.equal(blobSearches(body), 1, 'searched once, when asked')

  // Moved to another account: the blob the first account made is dropped from what it is sent.
  const moved = turn()
  const elsewhere = memory.forRequest({}, moved).bodyFor('second')!
  assert.notEqual(elsewhere, moved)
  assert.ok(!elsewhere.whole().toString('utf8').includes(BLOB), 'the foreign blob is dropped')
  assert.match(elsewhere.whole().toString('utf8'), /"text":"next"/)
})
