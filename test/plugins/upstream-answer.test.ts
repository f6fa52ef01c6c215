import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'
import { callUpstream, ClientGone, type Attempt } from '../../plugins/upstream-call.js'
import { UpstreamAnswer } from '../../plugins/upstream-answer.js'

/**
 * An upstream that answers by path: `/whole` a JSON body in one write with its headers, `/later`
 * a first part, then the rest once `finish` is called, `/big` megabytes as fast as they can go
 * out, `/silent` nothing at all. Each response's end is recorded: finished, or closed before that.
 */
async function startUpstream (): Promise<{ pool: Pool, finish: () => void, ends: Map<string, 'finished' | 'closed'>, close: () => Promise<void>, written: () => number }> {
  const ends = new Map<string, 'finished' | 'closed'>()
  const waiting: Array<() => void> = []
  let written = 0
  const record = (url: string, response: ServerResponse): void => {
    response.once('finish', () => { ends.set(url, 'finished') })
    response.once('close', () => { if (!ends.has(url)) ends.set(url, 'closed') })
  }
  const server = createServer((request, response) => {
    request.resume()
    record(request.url!, response)
    const url = request.url!.split('?')[0]
    if (url === '/silent') return
    if (url === '/whole') return response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
    if (url === '/later') {
      response.writeHead(200, { 'content-type': 'application/octet-stream' }).write('first,')
      waiting.push(() => response.end('rest'))
      return
    }
    response.writeHead(200, { 'content-type': 'application/octet-stream' })
    const chunk = Buffer.alloc(64 * 1024, 'x')
    const more = (): void => {
      while (written < 256 * 1024 * 1024) {
        written += chunk.length
        if (!response.write(chunk)) return void response.once('drain', more)
      }
      response.end()
    }
    more()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  return {
    pool,
    ends,
    finish: () => { for (const go of waiting.splice(0)) go() },
    written: () => written,
    close: async () => { await pool.destroy(); server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) }
  }
}

const attempt = (path: string, signal = new ClientGone()): Attempt => ({ path, method: 'GET', headers: [], body: undefined, signal, holdMs: 0, blobs: null })

async function settle (): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50))
}

test('an answer that came whole with its headers is taken as its bytes with no stream made; one still coming is streamed from where it is', { timeout: 10_000 }, async (t) => {
  const upstream = await startUpstream()
  t.after(upstream.close)
  let streams = 0
  const stream = UpstreamAnswer.prototype.stream
  UpstreamAnswer.prototype.stream = function (this: UpstreamAnswer) { streams++; return stream.call(this) }
  t.after(() => { UpstreamAnswer.prototype.stream = stream })

  const whole = await callUpstream(upstream.pool, attempt('/whole'), () => {})
  assert.equal(whole.status, 200)
  assert.equal(whole.headers['content-type'], 'application/json')
  assert.equal(whole.stream, null)
  assert.equal(whole.buffered?.toString(), '{"ok":true}')
  assert.equal(streams, 0, 'no stream made for a whole answer')

  const later = await callUpstream(upstream.pool, attempt('/later'), () => {})
  assert.notEqual(later.stream, null)
  assert.equal(streams, 1)
  upstream.finish()
  const parts: Buffer[] = later.buffered === null ? [] : [later.buffered]
  for await (const part of later.stream!) parts.push(part as Buffer)
  assert.equal(Buffer.concat(parts).toString(), 'first,rest', 'what came before the stream was made, then the rest, in order')
})

test('a stream read slowly holds the upstream back; destroyed before its end, or its client gone, the request is aborted', { timeout: 20_000 }, async (t) => {
  const upstream = await startUpstream()
  t.after(upstream.close)

  const big = await callUpstream(upstream.pool, attempt('/big'), () => {})
  await new Promise((resolve) => setTimeout(resolve, 300))
  const held = upstream.written()
  assert.ok(held < 16 * 1024 * 1024, `the upstream waits for a reader: ${held} bytes written`)
  big.stream!.destroy()
  await settle()
  assert.equal(upstream.ends.get('/big'), 'closed', 'the destroyed stream aborted its request')

  // The client leaves while the answer comes, before anything reads or listens to its stream:
  // the request is aborted, and the stream's error is heard (an unheard one would end the process).
  const leaving = new ClientGone()
  const later = await callUpstream(upstream.pool, attempt('/later', leaving), () => {})
  assert.equal(later.stream!.listenerCount('error'), 0)
  leaving.abort()
  await settle()
  assert.equal(later.stream!.destroyed, true)
  assert.equal(upstream.ends.get('/later'), 'closed', 'the client gone mid-answer aborted the request')

  const gone = new ClientGone()
  const silent = callUpstream(upstream.pool, attempt('/silent', gone), () => {})
  await settle()
  gone.abort()
  await assert.rejects(silent, { code: 'UND_ERR_ABORTED' })
  await settle()
  assert.equal(upstream.ends.get('/silent'), 'closed', 'the client gone before the headers aborted the request')

  // A client that left before the request went out: it never reaches the upstream.
  const left = new ClientGone()
  left.abort()
  await assert.rejects(callUpstream(upstream.pool, attempt('/whole?left', left), () => {}), { code: 'UND_ERR_ABORTED' })
  const whole = await callUpstream(upstream.pool, attempt('/whole'), () => {})
  assert.equal(whole.buffered?.toString(), '{"ok":true}', 'the pool still serves')
  assert.equal(upstream.ends.has('/whole?left'), false, 'the request of a client already gone was never sent')
})

test('an answer does not keep its raw header buffers once they are parsed: an open stream would hold them for as long as it lives', () => {
  const answer = new UpstreamAnswer(new ClientGone(), () => {}, () => {}, () => {})
  const controller = { rawHeaders: [Buffer.from('content-type'), Buffer.from('text/event-stream')] as Buffer[] | null, aborted: false, paused: false, reason: null, abort () {}, pause () {}, resume () {} }
  answer.onRequestStart(controller)
  answer.onResponseStart(controller, 200, { 'content-type': 'text/event-stream' })
  assert.equal(controller.rawHeaders, null)
  assert.equal(answer.status, 200)
  assert.equal(answer.headers['content-type'], 'text/event-stream')
})
