import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough, Readable } from 'node:stream'
import { heldWhole, holdPrelude } from '../../../src/wire/stream-hold.js'

const event = (type: string, extra: Record<string, unknown> = {}): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...extra })}\n\n`

test('the prelude is held until the first content event, which releases it with everything read', async () => {
  const body = new PassThrough()
  const held = holdPrelude(body, 5_000)
  body.write(event('response.created'))
  body.write(event('response.in_progress') + event('response.output_item.added', { item: { type: 'reasoning' } }))
  const result = await held
  assert.equal(result.failure, null)
  assert.equal(result.ended, false)
  assert.match(Buffer.concat(result.chunks).toString(), /created[\s\S]*in_progress[\s\S]*output_item\.added/)
  assert.equal(body.isPaused(), true, 'the rest waits for the caller')
})

test('a response.failed before content is caught with its error; the stream is read to its end', async () => {
  const body = new PassThrough()
  const held = holdPrelude(body, 5_000)
  body.write(event('response.created'))
  // An event cut in two chunks, as a network does.
  const failed = event('response.failed', { response: { error: { code: 'server_is_overloaded', message: 'busy' } } })
  body.write(failed.slice(0, 30))
  body.end(failed.slice(30))
  const result = await held
  assert.deepEqual(result.failure, { code: 'server_is_overloaded', message: 'busy' })
  assert.equal(result.ended, true)
})

test('events without an event line are told apart by their JSON type; CRLF lines work too', async () => {
  const body = new PassThrough()
  const held = holdPrelude(body, 5_000)
  body.write(`data: ${JSON.stringify({ type: 'response.created' })}\r\n\r\n`)
  body.write(`data: ${JSON.stringify({ type: 'response.output_text.delta', delta: 'hi' })}\r\n\r\n`)
  assert.equal((await held).failure, null)
})

test('a silent upstream is held no longer than the hold time', async () => {
  const body = new PassThrough()
  const started = Date.now()
  const held = holdPrelude(body, 150)
  body.write(event('response.created'))
  const result = await held
  assert.ok(Date.now() - started >= 140)
  assert.equal(result.chunks.length, 1)
  assert.equal(result.ended, false)
})

test('a stream that breaks during the hold rejects, so the caller can fail over', async () => {
  const body = new PassThrough()
  const held = holdPrelude(body, 5_000)
  body.write(event('response.created'))
  body.destroy(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }))
  await assert.rejects(held, /other side closed/)
})

test('a long run without content (comment lines) is released after a bounded size: backpressure is never lost', async () => {
  const body = new PassThrough()
  const held = holdPrelude(body, 5_000)
  body.write(event('response.created'))
  const padding = `: ${'x'.repeat(64 * 1024)}\n\n`
  for (let i = 0; i < 8; i++) body.write(padding)
  const result = await held
  assert.equal(result.failure, null)
  const bytes = result.chunks.reduce((sum, chunk) => sum + chunk.length, 0)
  assert.ok(bytes > 256 * 1024 && bytes < 400 * 1024, `held ${bytes} bytes`)
})

test('events are read one at a time across chunks: a blank line cut in two, mixed line ends, a first event in three pieces', async () => {
  const body = new PassThrough()
  const held = holdPrelude(body, 5_000)
  const created = event('response.created', { response: { instructions: 'x'.repeat(3000) } })
  body.write(created.slice(0, 100))
  body.write(created.slice(100, 2000))
  body.write(created.slice(2000, -1)) // its blank line's second half comes with the next event
  body.write(`\n${event('response.in_progress').replace(/\n\n$/, '\n\r\n')}`)
  let settled = false
  void held.then(() => { settled = true })
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(settled, false, 'only prelude so far: still held')
  const contentAt = Date.now()
  body.write(event('response.output_text.delta', { delta: 'hi' }) + 'data: {"type":"respo')
  const result = await held
  assert.ok(Date.now() - contentAt < 1_000, 'released by the content event, not by the hold time')
  assert.equal(result.failure, null)
  assert.equal(result.chunks.length, 5)
})

test('a failure after a prelude event in the same chunk is caught; what follows it is not taken for content', async () => {
  const body = new PassThrough()
  const held = holdPrelude(body, 5_000)
  body.end(event('response.created') + event('response.failed', { response: { error: { code: 'rate_limit_exceeded', message: 'slow down' } } }) + event('response.output_text.delta', { delta: 'x' }))
  const result = await held
  assert.deepEqual(result.failure, { code: 'rate_limit_exceeded', message: 'slow down' })
})

test('an event told apart only past its first bytes (a long id line before its name) is still read whole', async () => {
  const body = new PassThrough()
  const held = holdPrelude(body, 5_000)
  body.write(`id: ${'x'.repeat(600)}\n${event('response.created')}`)
  let settled = false
  void held.then(() => { settled = true })
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(settled, false, 'a prelude event: still held')
  body.write(event('response.output_text.delta', { delta: 'hi' }))
  const result = await held
  assert.equal(result.chunks.length, 2)
})

test('an answer that arrived whole before the hold began is taken and judged at once, without listeners or a timer', async () => {
  const whole = (text: string): Readable => {
    const body = new Readable({ read () {} })
    body.push(Buffer.from(text.slice(0, 40)))
    body.push(Buffer.from(text.slice(40)))
    body.push(null) // its end is known, not yet emitted: as undici leaves a short answer read with its headers
    return body
  }
  const answer = event('response.created') + event('response.output_text.delta', { delta: 'hi' }) + event('response.completed')
  const body = whole(answer)
  const held = holdPrelude(body, 5_000)
  assert.equal(body.listenerCount('data') + body.listenerCount('end'), 0, 'nothing waits on the stream')
  const result = await held
  assert.equal(result.ended, true)
  // Asked first, without a promise: the answer at once; a stream still open is not taken.
  const atOnce = heldWhole(whole(answer))
  assert.equal(Buffer.concat(atOnce?.chunks ?? []).toString(), answer)
  const open = new PassThrough()
  open.write(answer)
  assert.equal(heldWhole(open), null)
  assert.equal(open.readableLength, Buffer.byteLength(answer), 'an open stream is left unread')
  assert.equal(result.failure, null)
  assert.equal(Buffer.concat(result.chunks).toString(), answer)

  const failed = whole(event('response.created') + event('response.failed', { response: { error: { code: 'server_is_overloaded', message: 'busy' } } }))
  const judged = await holdPrelude(failed, 5_000)
  assert.deepEqual(judged.failure, { code: 'server_is_overloaded', message: 'busy' })
  assert.equal(judged.ended, true)

  // The name alone is no failure, nor is a failure after content (the answer was already begun).
  const named = event('response.created') + event('response.output_text.delta', { delta: 'a response.failed event ends a stream' }) + event('response.completed')
  assert.equal((await holdPrelude(whole(named), 5_000)).failure, null)
  const late = event('response.created') + event('response.output_text.delta', { delta: 'hi' }) + event('response.failed', { response: { error: { code: 'server_error' } } })
  const delivered = await holdPrelude(whole(late), 5_000)
  assert.equal(delivered.failure, null)
  assert.equal(Buffer.concat(delivered.chunks).toString(), late)
})
