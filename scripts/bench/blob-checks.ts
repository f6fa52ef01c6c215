import { randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ConversationMemory } from '../../src/pool/conversation-memory.js'
import { BlobOwners, blobFingerprint, blobsIn, withoutBlobs } from '../../src/pool/encrypted-blobs.js'
import { RequestBody } from '../../src/wire/request-body.js'

const READ_SIZE = 64 * 1024

export interface BlobFigures {
  bodyBytes: number
  blobs: number
  /** µs per request for the checks a conversation that stays on its account pays (byte scans only). */
  staysUs: number
  /** µs per request when it moved: every blob fingerprinted, the body parsed and rewritten. */
  movedUs: number
  /** The blob-owner memory at its capacity. */
  capacity: number
  ownersBytes: number
}

/** A Codex turn late in a long conversation: `blobs` reasoning items of ~4 KB among ~2 MB of history. */
function longConversationBody (blobs: number, targetBytes: number): Buffer {
  const input: unknown[] = []
  const text = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(targetBytes / blobs / 27)).slice(0, Math.max(0, Math.floor(targetBytes / blobs) - 4200))
  for (let i = 0; i < blobs; i++) {
    input.push({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] })
    input.push({ type: 'reasoning', summary: [], encrypted_content: `gAAAA${randomBytes(3000).toString('base64')}` })
  }
  return Buffer.from(JSON.stringify({ model: 'gpt-5-codex', input, store: false, stream: true, prompt_cache_key: 'conv-bench' }))
}

function microseconds (run: () => unknown, minMs = 200): number {
  let calls = 0
  const started = process.hrtime.bigint()
  let elapsed = 0n
  while (elapsed < BigInt(minMs) * 1_000_000n) {
    run()
    calls++
    elapsed = process.hrtime.bigint() - started
  }
  return Number(elapsed) / calls / 1000
}

function collectGarbage (): void {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
}

/**
 * What the encrypted-blob checks cost per request on a 2 MB body, on the common path (the
 * conversation stays: byte scans) and when the conversation moved (fingerprints and a rewrite);
 * and how much memory the blob owners take when full.
 */
export function blobBenchmark (): BlobFigures {
  const body = longConversationBody(100, 2 * 1024 * 1024)
  const headers = { 'session-id': 'conv-bench' }
  const owners = new BlobOwners()
  for (const fingerprint of blobsIn(body)) owners.set(fingerprint, 'account-a')

  // As the server holds it: the chunks it arrived in (64 KB socket reads).
  const received = new RequestBody(Array.from({ length: Math.ceil(body.length / READ_SIZE) }, (_, i) => body.subarray(i * READ_SIZE, (i + 1) * READ_SIZE)))
  // What the forwarder asks of each request, on the pool's own memory of the conversation.
  const memory = new ConversationMemory()
  memory.learn({ kind: 'conversation', key: 'conv-bench', account: 'account-a' })
  const staysUs = microseconds(() => memory.forRequest(headers, received).bodyFor('account-a'))
  const movedUs = microseconds(() => {
    const fingerprints = blobsIn(body)
    return owners.anyForeign(fingerprints, 'account-b') ? withoutBlobs(body, (fingerprint) => owners.peek(fingerprint) === 'account-a') : null
  })

  const capacity = 100_000
  collectGarbage()
  const before = process.memoryUsage().heapUsed
  const full = new BlobOwners(capacity)
  for (let i = 0; i < capacity; i++) full.set(blobFingerprint(`blob-${i}`), i % 2 === 0 ? 'account-a' : 'account-b')
  collectGarbage()
  const ownersBytes = process.memoryUsage().heapUsed - before
  if (full.size !== capacity) throw new Error('blob owners lost entries below capacity')
  return { bodyBytes: body.length, blobs: 100, staysUs, movedUs, capacity, ownersBytes }
}
