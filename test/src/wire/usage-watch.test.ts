import { test } from 'node:test'
import assert from 'node:assert/strict'
import { UsageWatch } from '../../../src/wire/usage-watch.js'
import { StreamFailureWatch } from '../../../src/wire/stream-failure.js'

const usage = { input_tokens: 120, input_tokens_details: { cached_tokens: 100 }, output_tokens: 30, output_tokens_details: { reasoning_tokens: 8 }, total_tokens: 150 }
const stream = [
  'event: response.created\ndata: {"type":"response.created","response":{"usage":null}}\n\n',
  'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"response.completed is just text here"}\n\n',
  `event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { model: 'gpt-5-codex', usage } })}\n\n`
].join('')

test('the usage of response.completed is found wherever the chunks are cut', () => {
  const bytes = Buffer.from(stream)
  for (let cut = 1; cut < bytes.length; cut += 7) {
    const seen: unknown[] = []
    const watch = new UsageWatch((found) => seen.push(found))
    watch.push(bytes.subarray(0, cut))
    watch.push(bytes.subarray(cut))
    assert.deepEqual(seen, [{ model: 'gpt-5-codex', input: 120, cachedInput: 100, output: 30, reasoning: 8 }], `cut at ${cut}`)
  }
})

test('a stream without response.completed reports nothing, and the failure watch still sees response.failed', () => {
  const seen: unknown[] = []
  new UsageWatch((found) => seen.push(found)).push(Buffer.from(stream.split('event: response.completed')[0]!))
  assert.deepEqual(seen, [])
  const failures: unknown[] = []
  new StreamFailureWatch((error) => failures.push(error)).push(Buffer.from('event: response.failed\ndata: {"type":"response.failed","response":{"error":{"code":"server_is_overloaded"}}}\n\n'))
  assert.deepEqual(failures, [{ code: 'server_is_overloaded' }])
})
