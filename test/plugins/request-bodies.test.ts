/**
 * What arrives as a request body, and how long and how much of it is held: a body that stalls is
 * cut with 408 (answers may still stream for long), a body too large always gets its 413 (never a
 * reset), and the bytes held for re-sending stay within --max-buffered.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { postResponses, responsesBody, startStack } from '../helpers/stack.js'

/** Writes `head` and then `body` bytes (in 1 MiB chunks) on a raw connection; resolves with what came back once it closed. */
async function rawExchange (url: string, head: string, bodyBytes: number, timeoutMs: number): Promise<{ answer: string, error: string | null, ms: number }> {
  const { port } = new URL(url)
  const started = Date.now()
  return await new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1')
    let answer = ''
    let error: string | null = null
    const timer = setTimeout(() => { error = 'no end within the time'; socket.destroy() }, timeoutMs)
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { answer += chunk })
    socket.on('error', (err: NodeJS.ErrnoException) => { error ??= err.code ?? err.message })
    socket.on('close', () => { clearTimeout(timer); resolve({ answer, error, ms: Date.now() - started }) })
    socket.write(head)
    const chunk = Buffer.alloc(1024 * 1024, 'a')
    let sent = 0
    const pump = (): void => {
      while (sent < bodyBytes) {
        const part = Math.min(chunk.length, bodyBytes - sent)
        sent += part
        if (!socket.write(part === chunk.length ? chunk : chunk.subarray(0, part))) {
          socket.once('drain', pump)
          return
        }
      }
    }
    pump()
  })
}

const head = (length: number): string => `POST /v1/responses HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`

test('a request body that stalls is cut with 408 after --request-body-timeout, while a long answer stream is not cut', async (t) => {
  const stack = await startStack(t, { settings: { requestBodyTimeout: '1s' } })
  await stack.addAccount()
  const stalled = await rawExchange(stack.url, head(100), 1, 8_000)
  assert.match(stalled.answer, /^HTTP\/1\.1 408 /, `answered 408: ${stalled.answer.slice(0, 80)} (${stalled.error ?? ''})`)
  assert.ok(stalled.ms < 6_000, `cut in time (${stalled.ms} ms)`)

  stack.fake.backend.streamOptions = { eventDelayMs: 500, deltas: 4 }
  const started = Date.now()
  const response = await postResponses(stack, responsesBody('a slow answer'))
  assert.equal(response.status, 200)
  assert.match(await response.text(), /response\.completed/)
  assert.ok(Date.now() - started > 1_500, 'the answer streamed for longer than the body timeout')
})

test('a body far over the limit always gets its 413, never a connection reset', async (t) => {
  const stack = await startStack(t, { settings: { bodyLimit: '1mib' } })
  for (let i = 0; i < 3; i++) {
    const big = 64 * 1024 * 1024
    const result = await rawExchange(stack.url, head(big), big, 30_000)
    assert.equal(result.error, null, `no reset while sending (try ${i + 1})`)
    assert.match(result.answer, /^HTTP\/1\.1 413 [\s\S]*body_too_large/)
  }
})

test('bytes held for re-sending stay within --max-buffered: beyond it a 503 with Retry-After, and the room comes back; a body larger than the whole budget gets 413', async (t) => {
  const stack = await startStack(t, { settings: { maxBuffered: '3mib' } })
  const account = await stack.addAccount()
  stack.fake.backend.script(account.accountId, { kind: 'hang' }, { kind: 'hang' })
  const body = responsesBody('x'.repeat(1200 * 1024))
  const leave = new AbortController()
  const holders = [0, 1].map(async () => await fetch(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: leave.signal }).catch(() => null))
  // Wait until both hang at the backend, their bodies held.
  const deadline = Date.now() + 10_000
  while (stack.fake.backend.requests.length < 2) {
    assert.ok(Date.now() < deadline, 'both reached the backend')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const refused = await postResponses(stack, body)
  assert.equal(refused.status, 503)
  assert.equal(refused.headers.get('retry-after'), '2')
  assert.match(((await refused.json()) as { error: { message: string } }).error.message, /--max-buffered/)
  // A body of unknown length is counted as it arrives: refused the same way once it passes the room left.
  const chunkedRefused = await fetch(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Blob([JSON.stringify(body)]).stream(), duplex: 'half' } as RequestInit)
  assert.equal(chunkedRefused.status, 503, 'chunked')
  assert.equal(chunkedRefused.headers.get('retry-after'), '2')
  assert.match(((await chunkedRefused.json()) as { error: { message: string } }).error.message, /--max-buffered/)
  assert.equal(stack.app.bodyBudget.heldBytes, 2 * Buffer.byteLength(JSON.stringify(body)), 'what the refused bodies had counted was given back')
  leave.abort()
  await Promise.all(holders)
  // The room comes back once the proxy has let the held bodies go (it notices the clients leaving);
  // a client following Retry-After gets in. Bounded: 50 tries.
  let after = await postResponses(stack, body)
  for (let tries = 1; after.status === 503 && tries < 50; tries++) {
    await after.text()
    await new Promise((resolve) => setTimeout(resolve, 100))
    after = await postResponses(stack, body)
  }
  assert.equal(after.status, 200, 'the room came back once the held bodies were let go')
  await after.text()

  // A body larger than the whole budget could never fit: 413 at once, not Retry-After forever.
  for (const chunked of [false, true]) {
    const huge = JSON.stringify(responsesBody('x'.repeat(4 * 1024 * 1024)))
    const sent = chunked ? new Blob([huge]).stream() : huge
    const tooLarge = await fetch(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: sent, ...(chunked ? { duplex: 'half' } : {}) } as RequestInit)
    assert.equal(tooLarge.status, 413, chunked ? 'chunked' : 'declared length')
    assert.equal(tooLarge.headers.get('retry-after'), null)
    assert.match(((await tooLarge.json()) as { error: { message: string } }).error.message, /larger than the most the proxy holds at once \(--max-buffered 3145728 bytes\)/)
  }
  assert.equal(stack.fake.backend.requests.length, 3, 'neither reached the backend')
})

test('a body of megabytes, kept in the chunks it arrived in, reaches the backend whole on the first account and again after failover', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 500 })
  // Many socket reads' worth, with a field near the end that a search across chunk seams must find.
  const history = 'x'.repeat(3 * 1024 * 1024)
  const body = responsesBody('the end', { prompt_cache_key: 'conv-big', input: [
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: history }] },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'the end' }] }
  ] })
  const response = await postResponses(stack, body, { 'x-test': 'big' })
  assert.equal(response.status, 200, await response.text())
  const calls = stack.fake.backend.requests.filter((request) => request.headers['x-test'] === 'big')
  assert.deepEqual(calls.map((request) => request.accountId), [first.accountId, second.accountId])
  for (const call of calls) assert.deepEqual(call.body, body, 'byte for byte the client\'s body')
  assert.equal(stack.app.forwarder.memory.affinity.get('conv-big'), second.id, 'its conversation key, read across the chunks, now names the account that served')
})

test('a body of one buffer, over the size kept as chunks, reaches both accounts whole across a failover', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 500 })
  // Over CHUNKED_UP_TO: held as one buffer of its own.
  const body = responsesBody('y'.repeat(9 * 1024 * 1024))
  const response = await postResponses(stack, body, { 'x-test': 'one-buffer' })
  assert.equal(response.status, 200)
  assert.match(await response.text(), /response\.completed/)
  const calls = stack.fake.backend.requests.filter((request) => request.headers['x-test'] === 'one-buffer')
  assert.deepEqual(calls.map((request) => request.accountId), [first.accountId, second.accountId])
  for (const call of calls) assert.deepEqual(call.body, body, 'byte for byte the client\'s body')
})

test('a request and its body of up to one socket read (64 KiB) are held without pausing the connection, on every Node version', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  const held: number[] = []
  stack.app.server.prependListener('request', (request: import('node:http').IncomingMessage) => { held.push(request.readableHighWaterMark) })
  // Node 20's default is 16 KiB: a 40 KB body would stop the socket's reads until the body is read.
  const body = responsesBody('z'.repeat(40_000))
  const response = await postResponses(stack, body, { 'x-test': 'one-read' })
  assert.equal(response.status, 200)
  await response.text()
  assert.deepEqual(held, [64 * 1024])
  assert.deepEqual(stack.fake.backend.requests.find((request) => request.headers['x-test'] === 'one-read')?.body, body)
})
