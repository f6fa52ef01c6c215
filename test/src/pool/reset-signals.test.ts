import { test } from 'node:test'
import assert from 'node:assert/strict'
import { classifyAnswer, classifyError, classifyStreamFailure } from '../../../src/pool/failover-policy.js'
import { resetFromHeaders } from '../../../src/pool/reset-signals.js'
import { MarkedEventWatch } from '../../../src/wire/marked-event-watch.js'
import { watchedFailure } from '../../../src/wire/stream-failure.js'

const NOW = 1_800_000_000_000
const S = NOW / 1000

function usageLimit429 (error: Record<string, unknown>, headers: Record<string, string> = {}) {
  return classifyAnswer({ status: 429, headers, errorBody: JSON.stringify({ error: { type: 'usage_limit_reached', ...error } }) }, NOW)
}

test('each reset signal alone sets the cooldown, naming its source', () => {
  assert.deepEqual(usageLimit429({ resets_at: S + 100 }), { kind: 'quota', resetsAt: (S + 100) * 1000, source: 'body.resets_at', reason: 'usage_limit_reached' })
  assert.deepEqual(usageLimit429({ resets_in_seconds: 50 }), { kind: 'quota', resetsAt: NOW + 50_000, source: 'body.resets_in_seconds', reason: 'usage_limit_reached' })
  assert.deepEqual(usageLimit429({}, { 'x-codex-primary-reset-at': String(S + 70) }), { kind: 'quota', resetsAt: (S + 70) * 1000, source: 'header.x-codex-primary-reset-at', reason: 'usage_limit_reached' })
  assert.deepEqual(usageLimit429({}, { 'x-codex-secondary-reset-after-seconds': '30' }), { kind: 'quota', resetsAt: NOW + 30_000, source: 'header.x-codex-secondary-reset-after-seconds', reason: 'usage_limit_reached' })
})

test('in conflict, the body wins over the headers and absolute over relative', () => {
  const both = usageLimit429({ resets_at: S + 100, resets_in_seconds: 999 }, { 'x-codex-primary-reset-at': String(S + 5) })
  assert.equal(both.kind === 'quota' && both.source, 'body.resets_at')
  const relative = usageLimit429({ resets_in_seconds: 40 }, { 'x-codex-primary-reset-at': String(S + 5) })
  assert.equal(relative.kind === 'quota' && relative.source, 'body.resets_in_seconds')
  const headers = resetFromHeaders({ 'x-codex-primary-reset-at': String(S + 500), 'x-codex-primary-reset-after-seconds': '10' }, NOW)
  assert.equal(headers?.source, 'header.x-codex-primary-reset-at')
})

test('among header windows, the used-up one wins, else the earliest', () => {
  const exhaustedSecondary = resetFromHeaders({
    'x-codex-primary-used-percent': '40', 'x-codex-primary-reset-at': String(S + 60),
    'x-codex-secondary-used-percent': '100', 'x-codex-secondary-reset-at': String(S + 86_400)
  }, NOW)
  assert.deepEqual(exhaustedSecondary, { at: (S + 86_400) * 1000, source: 'header.x-codex-secondary-reset-at' })
  const unknown = resetFromHeaders({ 'x-codex-primary-reset-at': String(S + 600), 'x-codex-secondary-reset-at': String(S + 60) }, NOW)
  assert.equal(unknown?.source, 'header.x-codex-secondary-reset-at')
})

test('implausible values (past, beyond a year, not numbers) are skipped for the next signal or the cooldown', () => {
  const past = usageLimit429({ resets_at: S - 10 }, { 'x-codex-primary-reset-after-seconds': '20' })
  assert.equal(past.kind === 'quota' && past.source, 'header.x-codex-primary-reset-after-seconds')
  const farFuture = usageLimit429({ resets_at: S + 400 * 86_400 })
  assert.deepEqual(farFuture, { kind: 'account', reason: 'HTTP 429 usage_limit_reached' }, 'no plausible reset: the ladder and the configured cooldown decide')
  const junk = usageLimit429({ resets_at: 'soon', resets_in_seconds: -5 }, { 'x-codex-primary-reset-at': 'tomorrow' })
  assert.equal(junk.kind, 'account')
})

test('a 429 that is not a usage limit takes the ladder even with reset headers', () => {
  const verdict = classifyAnswer({ status: 429, headers: { 'x-codex-primary-reset-at': String(S + 60) }, errorBody: '{"error":{"type":"rate_limit_exceeded"}}' }, NOW)
  assert.equal(verdict.kind, 'account')
})

test('a response.failed quota error in the stream gives a reset from its fields or its "try again in" message', () => {
  assert.deepEqual(classifyStreamFailure({ code: 'usage_limit_reached', resets_at: S + 90 }, NOW), { kind: 'quota', resetsAt: (S + 90) * 1000, source: 'stream.resets_at', reason: 'usage_limit_reached' })
  assert.deepEqual(classifyStreamFailure({ code: 'rate_limit_exceeded', message: 'Rate limit reached. Please try again in 12s.' }, NOW), { kind: 'quota', resetsAt: NOW + 12_000, source: 'stream.message', reason: 'rate_limit_exceeded' })
  assert.equal(classifyStreamFailure({ code: 'server_error', message: 'oops' }, NOW).kind, 'account')
})

test('the stream watch finds response.failed even when the marker straddles chunks, and ignores normal streams', () => {
  const failed = 'event: response.failed\ndata: {"type":"response.failed","response":{"id":"r","error":{"code":"usage_limit_reached","resets_at":123}}}\n\n'
  const stream = 'event: response.created\ndata: {"type":"response.created"}\n\n' + failed
  // Network reads are far larger than the marker; every cut from 16 bytes up must be found.
  for (let cut = 16; cut < stream.length; cut += 7) {
    const seen: unknown[] = []
    const watch = new MarkedEventWatch([watchedFailure((error) => seen.push(error))])
    for (let i = 0; i < stream.length; i += cut) watch.push(Buffer.from(stream.slice(i, i + cut)))
    assert.deepEqual(seen, [{ code: 'usage_limit_reached', resets_at: 123 }], `chunks of ${cut}`)
  }
  const quiet: unknown[] = []
  const watch = new MarkedEventWatch([watchedFailure((error) => quiet.push(error))])
  watch.push(Buffer.from('event: response.completed\ndata: {"type":"response.completed","response":{"id":"r"}}\n\n'))
  assert.deepEqual(quiet, [])
})

test('faults are attributed: 5xx, overload codes, timeouts and refused connections are the upstream\'s; 401 is an auth fault', () => {
  const answer = (status: number, body: unknown = {}): ReturnType<typeof classifyAnswer> => classifyAnswer({ status, headers: {}, errorBody: JSON.stringify(body) }, NOW)
  assert.deepEqual(answer(502, { detail: 'Bad Gateway' }), { kind: 'upstream', reason: 'HTTP 502 Bad Gateway', fault: 'http_502' })
  assert.deepEqual(answer(503, { error: { code: 'server_is_overloaded', message: 'busy' } }), { kind: 'upstream', reason: 'HTTP 503 server_is_overloaded', fault: 'overloaded' })
  assert.deepEqual(answer(500, { error: { code: 'slow_down' } }), { kind: 'upstream', reason: 'HTTP 500 slow_down', fault: 'overloaded' })
  assert.deepEqual(answer(401, { detail: 'Unauthorized' }), { kind: 'account', reason: 'HTTP 401 Unauthorized', auth: true })
  assert.deepEqual(answer(403), { kind: 'account', reason: 'HTTP 403' })
  for (const status of [400, 404, 409, 413, 422]) assert.deepEqual(answer(status), { kind: 'deliver' }, `${status} is the request's own`)
  assert.equal(classifyError(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' })).kind, 'upstream')
  assert.deepEqual(classifyError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), { kind: 'upstream', reason: 'upstream unreachable (ECONNREFUSED)', fault: 'unreachable' })
})

test('a usage limit of one limit family (its -limit-name is not codex) is model-scoped, its reset read from its own headers', () => {
  const headers = {
    'x-codex-active-limit': 'codex_bengalfox',
    'x-codex-bengalfox-limit-name': 'GPT-5.3-Codex-Spark',
    'x-codex-bengalfox-primary-used-percent': '100',
    'x-codex-bengalfox-primary-reset-at': String(S + 1200),
    'x-codex-primary-used-percent': '10',
    'x-codex-primary-reset-at': String(S + 60)
  }
  assert.deepEqual(usageLimit429({}, headers), {
    kind: 'quota', resetsAt: (S + 1200) * 1000, source: 'header.x-codex-bengalfox-primary-reset-at', reason: 'usage_limit_reached', limit: { family: 'codex_bengalfox', name: 'GPT-5.3-Codex-Spark' }
  })
  const codexFamily = usageLimit429({ resets_at: S + 100 }, { 'x-codex-active-limit': 'codex', 'x-codex-limit-name': 'codex' })
  assert.equal(codexFamily.kind === 'quota' && codexFamily.limit, undefined, 'the codex family is the whole account')
  const unnamed = usageLimit429({ resets_at: S + 100 }, { 'x-codex-active-limit': 'codex_other' })
  assert.equal(unnamed.kind === 'quota' && unnamed.limit, undefined, 'no -limit-name: not known to be model-scoped')
})

test('a response.failed before content: overload and limits fail over, anything else is the request\'s answer', () => {
  const early = (error: Record<string, unknown>): ReturnType<typeof classifyAnswer> => classifyAnswer({ status: 200, headers: {}, errorBody: null, streamError: error }, NOW)
  assert.deepEqual(early({ code: 'server_is_overloaded', message: 'busy' }), { kind: 'upstream', reason: 'stream failed: server_is_overloaded', fault: 'overloaded' })
  assert.equal(early({ code: 'usage_limit_reached', resets_at: S + 60 }).kind, 'quota')
  assert.equal(early({ code: 'rate_limit_exceeded', message: 'no hint' }).kind, 'account')
  assert.deepEqual(early({ code: 'context_length_exceeded', message: 'too long' }), { kind: 'deliver' })
  assert.deepEqual(early({ code: 'invalid_prompt', message: 'no' }), { kind: 'deliver' })
})
