import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { CODEX_CLI_VERSION, ensureCodexCli, runCodexExec } from './codex-cli.js'

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: Record<string, unknown>
}

type Answer = (res: ServerResponse) => void

function sse (res: ServerResponse, events: Array<Record<string, unknown> & { type: string }>): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  for (const e of events) res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`)
  res.end()
}

/** The usual answer to a turn: one assistant message streamed in pieces. */
function textTurn (parts: string[]): Answer {
  const text = parts.join('')
  const item = { type: 'message', role: 'assistant', id: 'msg_test_1', status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] }
  return (res) => sse(res, [
    { type: 'response.created', response: { id: 'resp_test_1', status: 'in_progress' } },
    { type: 'response.output_item.added', output_index: 0, item: { ...item, status: 'in_progress', content: [] } },
    ...parts.map((delta) => ({ type: 'response.output_text.delta', output_index: 0, content_index: 0, item_id: 'msg_test_1', delta })),
    { type: 'response.output_item.done', output_index: 0, item },
    { type: 'response.completed', response: { id: 'resp_test_1', status: 'completed', usage: { input_tokens: 12, output_tokens: 4, total_tokens: 16 } } }
  ])
}

/** A throwaway provider on 127.0.0.1 that records every request and answers with `answer`. */
class FakeProvider {
  readonly seen: Seen[] = []
  answer: Answer = textTurn(['ok'])
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let body: Record<string, unknown> = {}
      try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> } catch { /* not JSON */ }
      this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      this.answer(res)
    })
  })

  async start (): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`
  }

  async stop (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

describe('real Codex CLI against a local provider', { timeout: 20 * 60_000 }, () => {
  const provider = new FakeProvider()
  let baseUrl = ''

  before(async () => {
    const started = Date.now()
    const bin = await ensureCodexCli()
    console.log(`codex ${CODEX_CLI_VERSION} at ${bin} (ready in ${Date.now() - started} ms)`)
    baseUrl = await provider.start()
  }, { timeout: 20 * 60_000 })

  after(async () => { await provider.stop() })

  it('runs one turn: POST /v1/responses, streamed text becomes the final message', { timeout: 120_000 }, async () => {
    provider.seen.length = 0
    provider.answer = textTurn(['Hello ', 'from the ', 'local provider.'])
    const started = Date.now()
    const r = await runCodexExec({ baseUrl, prompt: 'Say hello.' })
    console.log(`one turn took ${Date.now() - started} ms`)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.timedOut, false)
    assert.equal(r.lastMessage, 'Hello from the local provider.')
    assert.match(r.stdout, /Hello from the local provider\./)

    assert.equal(provider.seen.length, 1, 'exactly one request, nothing else (no /models)')
    const [req] = provider.seen
    assert.ok(req !== undefined)
    assert.equal(req.method, 'POST')
    assert.equal(req.url, '/v1/responses')
    assert.equal(req.headers.authorization, undefined, 'no Authorization without env_key')
    assert.equal(req.headers['chatgpt-account-id'], undefined)
    assert.equal(req.headers.accept, 'text/event-stream')
    assert.equal(req.headers['content-type'], 'application/json')
    assert.equal(req.headers.originator, 'codex_exec')
    assert.match(String(req.headers['user-agent']), new RegExp(`^codex_exec/${CODEX_CLI_VERSION.replaceAll('.', '\\.')} `))
    for (const h of ['session-id', 'thread-id', 'x-client-request-id', 'x-codex-window-id', 'x-codex-turn-metadata']) {
      assert.ok(typeof req.headers[h] === 'string' && req.headers[h] !== '', `header ${h}`)
    }

    const body = req.body
    for (const k of ['model', 'input', 'stream', 'store', 'include', 'prompt_cache_key', 'tool_choice', 'parallel_tool_calls', 'reasoning', 'client_metadata']) {
      assert.ok(k in body, `body.${k}`)
    }
    assert.equal(typeof body.model, 'string')
    assert.equal(body.stream, true)
    assert.equal(body.store, false)
    assert.deepEqual(body.include, ['reasoning.encrypted_content'])
    assert.equal(body.prompt_cache_key, req.headers['session-id'])
    assert.ok(Array.isArray(body.input))
    const last = body.input.at(-1) as { type: string, role: string, content: Array<{ type: string, text: string }> }
    assert.equal(last.type, 'message')
    assert.equal(last.role, 'user')
    assert.deepEqual(last.content, [{ type: 'input_text', text: 'Say hello.' }])
  })

  it('sends Authorization: Bearer <apiKey> when apiKey is given', { timeout: 120_000 }, async () => {
    provider.seen.length = 0
    provider.answer = textTurn(['keyed'])
    const r = await runCodexExec({ baseUrl, prompt: 'Hi', apiKey: 'test-key-123' })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.lastMessage, 'keyed')
    assert.equal(provider.seen.length, 1)
    assert.equal(provider.seen[0]?.headers.authorization, 'Bearer test-key-123')
  })

  it('ends the turn on a 429 usage_limit_reached without retrying', { timeout: 120_000 }, async () => {
    provider.seen.length = 0
    provider.answer = (res) => {
      res.writeHead(429, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { type: 'usage_limit_reached', message: 'The usage limit has been reached', plan_type: 'plus', resets_at: Math.floor(Date.now() / 1000) + 3600 } }))
    }
    const r = await runCodexExec({ baseUrl, prompt: 'Hi' })
    assert.equal(r.code, 1)
    assert.equal(r.lastMessage, null)
    assert.match(r.stderr, /hit your usage limit.*try again at/)
    assert.equal(provider.seen.length, 1)
  })

  it('retries a 500 as configured: 1 + request_max_retries per attempt, 1 + stream_max_retries attempts', { timeout: 120_000 }, async () => {
    provider.seen.length = 0
    provider.answer = (res) => {
      res.writeHead(500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: 'boom' } }))
    }
    const r = await runCodexExec({ baseUrl, prompt: 'Hi', requestMaxRetries: 1, streamMaxRetries: 1 })
    assert.equal(r.code, 1)
    assert.equal(r.lastMessage, null)
    assert.match(r.stderr, /Reconnecting\.\.\. 1\/1/)
    assert.equal(provider.seen.length, 4)
  })

  it('kills the CLI when it runs past timeoutMs', { timeout: 120_000 }, async () => {
    provider.seen.length = 0
    provider.answer = (res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.write(': waiting\n\n') }
    const started = Date.now()
    const r = await runCodexExec({ baseUrl, prompt: 'Hi', timeoutMs: 3000 })
    assert.equal(r.timedOut, true)
    assert.equal(r.lastMessage, null)
    assert.ok(Date.now() - started < 15_000)
  })
})
