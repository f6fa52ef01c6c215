import { test } from 'node:test'
import assert from 'node:assert/strict'
import { classifyAnswer } from '../../../src/pool/failover-policy.js'
import { chainMovedFrame, errorFrame, failureAnswer, frameType, readTurnFrame } from '../../../src/wire/ws-frames.js'

const NOW = 1_760_000_000_000

test('an error frame is judged as the HTTP answer of its status, with its headers', () => {
  const frame = JSON.stringify({ type: 'error', status: 429, error: { type: 'usage_limit_reached', resets_at: 1_760_003_600 }, headers: { 'x-codex-primary-used-percent': '100' } })
  const answer = failureAnswer(frame, { 'x-request-id': 'r' })!
  assert.equal(answer.status, 429)
  assert.equal(answer.headers['x-codex-primary-used-percent'], '100')
  assert.equal(answer.headers['x-request-id'], 'r')
  assert.deepEqual(classifyAnswer(answer, NOW), { kind: 'quota', resetsAt: 1_760_003_600_000, source: 'body.resets_at', reason: 'usage_limit_reached' })
})

test('a response.failed before content is the stream failure it is over HTTP', () => {
  const frame = JSON.stringify({ type: 'response.failed', response: { error: { code: 'server_is_overloaded', message: 'busy' } } })
  const answer = failureAnswer(frame, {})!
  assert.equal(classifyAnswer(answer, NOW).kind, 'upstream')
})

test('client frames: only response.create is a turn; its chain link is read', () => {
  assert.equal(typeof readTurnFrame(Buffer.from('not json')), 'string')
  assert.match(readTurnFrame(Buffer.from('{"type":"response.cancel"}')) as string, /only response.create/)
  const turn = readTurnFrame(Buffer.from('{"type":"response.create","previous_response_id":"resp_1","input":[]}'))
  assert.equal(typeof turn, 'object')
  assert.equal((turn as { previousResponseId: string }).previousResponseId, 'resp_1')
  assert.equal(frameType('{"type":"response.output_text.delta","delta":"x"}'), 'response.output_text.delta')
})

test('the pool\'s own answers become error frames; a moved chain is a response.failed Codex retries', () => {
  const text = JSON.parse(errorFrame(400, { 'content-type': 'text/plain' }, 'no account: run codex-eq login')) as Record<string, any>
  assert.deepEqual([text.type, text.status, text.error.message], ['error', 400, 'no account: run codex-eq login'])
  const json = JSON.parse(errorFrame(429, {}, { error: { type: 'usage_limit_reached', resets_at: 5 } })) as Record<string, any>
  assert.deepEqual(json.error, { type: 'usage_limit_reached', resets_at: 5 })
  const moved = JSON.parse(chainMovedFrame()) as Record<string, any>
  assert.equal(moved.type, 'response.failed')
  assert.ok(!['context_length_exceeded', 'insufficient_quota', 'usage_not_included', 'cyber_policy', 'invalid_prompt', 'server_is_overloaded', 'slow_down'].includes(moved.response.error.code))
})
