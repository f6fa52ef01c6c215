import { test } from 'node:test'
import assert from 'node:assert/strict'
import Anthropic from '@anthropic-ai/sdk'
import { startStack, type Stack } from '../../helpers/stack.js'

const anthropic = (stack: Stack, apiKey = 'unused-key-000'): Anthropic => new Anthropic({ baseURL: stack.url, apiKey, maxRetries: 0, timeout: 30_000 })
const lastUpstream = (stack: Stack): Record<string, any> => stack.fake.backend.requests.at(-1)!.body as Record<string, any>

test('a whole Messages answer: system, blocks and thinking translated; the SDK reads text, stop_reason and usage', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const message = await anthropic(stack).messages.create({
    model: 'claude-sonnet-4-6',
    max_tokens: 1024,
    system: [{ type: 'text', text: 'You are Claude Code.' }],
    thinking: { type: 'enabled', budget_tokens: 20_000 },
    messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }] }]
  })
  assert.equal(message.type, 'message')
  assert.equal(message.model, 'claude-sonnet-4-6')
  assert.deepEqual(message.content, [{ type: 'text', text: 'served by one@example.com: look' }])
  assert.equal(message.stop_reason, 'end_turn')
  assert.ok(message.usage.input_tokens > 0 && message.usage.output_tokens > 0)
  const sent = lastUpstream(stack)
  assert.equal(sent.model, 'gpt-5-codex', 'Sonnets are aliased by default')
  assert.equal(sent.instructions, 'You are Claude Code.')
  assert.deepEqual(sent.reasoning, { effort: 'high', summary: 'auto' }, 'a large thinking budget is a high effort')
  assert.equal(sent.stream, true)
  assert.equal(sent.store, false)
  assert.deepEqual(sent.input, [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'look' }, { type: 'input_image', image_url: 'data:image/png;base64,AAAA' }] }])
})

test('a streamed Messages answer follows Anthropic\'s event sequence', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const stream = anthropic(stack).messages.stream({ model: 'claude-haiku-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'stream please' }] })
  const types: string[] = []
  for await (const event of stream) types.push(event.type)
  const final = await stream.finalMessage()
  assert.deepEqual(final.content.map((block) => [block.type, (block as Anthropic.TextBlock).text]), [['text', 'served by one@example.com: stream please']])
  assert.equal(final.stop_reason, 'end_turn')
  assert.ok(final.usage.output_tokens > 0)
  const collapsed = types.filter((type, i) => type !== types[i - 1])
  assert.deepEqual(collapsed, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
})

test('tool use streams as input_json_delta, and the tool_result follow-up reaches the backend as function_call_output', async (t) => {
  const stack = await startStack(t)
  const one = await stack.addAccount({ email: 'one@example.com' })
  stack.fake.backend.script(one.accountId, { kind: 'tool_calls', calls: [{ name: 'Bash', arguments: '{"command":"ls"}' }, { name: 'Read', arguments: '{"file":"x"}' }] })
  const client = anthropic(stack)
  const tools: Anthropic.Tool[] = [
    { name: 'Bash', description: 'Runs a command', input_schema: { type: 'object', properties: { command: { type: 'string' } } } },
    { name: 'Read', input_schema: { type: 'object', properties: { file: { type: 'string' } } } }
  ]
  const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'list and read' }]
  const stream = client.messages.stream({ model: 'claude-opus-4-1', max_tokens: 100, tools, tool_choice: { type: 'auto' }, messages })
  const deltas: string[] = []
  for await (const event of stream) if (event.type === 'content_block_delta' && event.delta.type === 'input_json_delta') deltas.push(event.delta.partial_json)
  const final = await stream.finalMessage()
  assert.equal(final.stop_reason, 'tool_use')
  const uses = final.content.filter((block): block is Anthropic.ToolUseBlock => block.type === 'tool_use')
  assert.deepEqual(uses.map((use) => [use.name, use.input]), [['Bash', { command: 'ls' }], ['Read', { file: 'x' }]])
  assert.ok(deltas.length >= 4, 'arguments arrive in pieces')
  assert.equal(final.content[0]!.type, 'text', 'the text said before the calls is its own block')

  messages.push({ role: 'assistant', content: final.content as Anthropic.ContentBlockParam[] })
  messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: uses[0]!.id, content: 'a.txt' }, { type: 'tool_result', tool_use_id: uses[1]!.id, content: [{ type: 'text', text: 'gone' }], is_error: true }, { type: 'text', text: 'go on' }] })
  const answer = await client.messages.create({ model: 'claude-opus-4-1', max_tokens: 100, tools, messages })
  assert.equal(answer.stop_reason, 'end_turn')
  const input = lastUpstream(stack).input as Array<Record<string, unknown>>
  assert.deepEqual(input.slice(1), [
    { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: (final.content[0] as Anthropic.TextBlock).text }] },
    { type: 'function_call', call_id: uses[0]!.id, name: 'Bash', arguments: '{"command":"ls"}' },
    { type: 'function_call', call_id: uses[1]!.id, name: 'Read', arguments: '{"file":"x"}' },
    { type: 'function_call_output', call_id: uses[0]!.id, output: 'a.txt' },
    { type: 'function_call_output', call_id: uses[1]!.id, output: 'Error: gone' },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go on' }] }
  ])
  assert.deepEqual(lastUpstream(stack).reasoning, { effort: 'high', summary: 'auto' }, 'Opus is a high effort by default')
})

test('errors in Anthropic\'s shape: refused input, the backend\'s 400, x-api-key checked, an exhausted pool', async (t) => {
  const stack = await startStack(t, { settings: { apiKey: ['right-key-123456'] } })
  const client = anthropic(stack, 'right-key-123456')
  const one = await stack.addAccount()
  await assert.rejects(client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }] }] }), (err: InstanceType<typeof Anthropic.BadRequestError>) => {
    assert.ok(err instanceof Anthropic.BadRequestError)
    assert.deepEqual(Object.keys(err.error as object), ['type', 'error'])
    assert.equal((err.error as { error: { type: string } }).error.type, 'invalid_request_error')
    assert.match(err.message, /document are not supported/)
    return true
  })
  const raw = await fetch(`${stack.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'right-key-123456', 'content-type': 'application/json' }, body: '{"model": ' })
  assert.equal(raw.status, 400)
  assert.equal((await raw.json() as { type: string }).type, 'error', 'even unparsable JSON is answered in Anthropic\'s shape')
  const tooLarge = await fetch(`${stack.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'right-key-123456', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [{ role: 'user', content: 'x'.repeat(stack.config.bodyLimit) }] }) })
  assert.equal(tooLarge.status, 413)
  assert.equal((await tooLarge.json() as { type: string }).type, 'error', 'a body over the limit too')
  stack.fake.backend.script(one.accountId, { kind: 'status', status: 400, body: { detail: 'Unsupported model' } })
  await assert.rejects(client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (err: InstanceType<typeof Anthropic.BadRequestError>) => {
    assert.ok(err instanceof Anthropic.BadRequestError)
    assert.match(err.message, /Unsupported model/)
    return true
  })
  await assert.rejects(anthropic(stack, 'wrong-key-1234567').messages.create({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (err: InstanceType<typeof Anthropic.AuthenticationError>) => {
    assert.ok(err instanceof Anthropic.AuthenticationError)
    assert.equal((err.error as { type: string }).type, 'error')
    return true
  })
  stack.fake.backend.setExhausted(one.accountId, { resetsInSeconds: 600 })
  await assert.rejects(client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (err: InstanceType<typeof Anthropic.RateLimitError>) => {
    assert.ok(err instanceof Anthropic.RateLimitError)
    assert.equal((err.error as { error: { type: string } }).error.type, 'rate_limit_error')
    return true
  })
})

test('failover under Messages before the first byte; a failure after content is Anthropic\'s error event', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'stream_failed', code: 'server_is_overloaded', message: 'overloaded' })
  const client = anthropic(stack)
  const stream = client.messages.stream({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
  const final = await stream.finalMessage()
  assert.deepEqual(final.content.map((block) => (block as Anthropic.TextBlock).text), ['served by second@example.com: hi'])

  stack.fake.backend.script(second.accountId, { kind: 'stream_failed', code: 'server_is_overloaded', message: 'the model is at capacity', afterContent: true })
  const broken = client.messages.stream({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
  await assert.rejects(broken.finalMessage(), (err: Error) => {
    assert.match(err.message, /at capacity/)
    assert.match(err.message, /overloaded_error/)
    return true
  })
})

test('count_tokens answers an estimate; the Anthropic SDK lists models in its own shape', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  const client = anthropic(stack)
  const counted = await client.messages.countTokens({ model: 'claude-sonnet-4-6', system: 'x'.repeat(400), messages: [{ role: 'user', content: 'hello' }] })
  assert.ok(counted.input_tokens >= 100 && counted.input_tokens < 200, `about 4 characters a token: ${counted.input_tokens}`)
  const ids = []
  for await (const model of client.models.list()) ids.push(model.id)
  assert.deepEqual(ids, ['gpt-5.3-codex'])
})

test('the Anthropic SDK retrieves a model in its own shape (a Claude name the default aliases map); an unknown one is its NotFoundError', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount()
  const client = anthropic(stack)
  const model = await client.models.retrieve('claude-sonnet-4-6')
  assert.equal(model.type, 'model')
  assert.equal(model.id, 'claude-sonnet-4-6')
  await assert.rejects(client.models.retrieve('no-such-model'), (err: unknown) => err instanceof Anthropic.NotFoundError)
})

test('stop_sequences end the text where the first one appears, with stop_reason stop_sequence', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const message = await anthropic(stack).messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, stop_sequences: ['@example'], messages: [{ role: 'user', content: 'hello' }] })
  assert.deepEqual(message.content.map((block) => (block as Anthropic.TextBlock).text), ['served by one'])
  assert.equal(message.stop_reason, 'stop_sequence')
  assert.equal(message.stop_sequence, '@example')
  assert.equal(lastUpstream(stack).stop_sequences, undefined, 'the backend never sees them')
})

test('an upstream stream that breaks mid-answer: Anthropic\'s error event for the client, the account\'s last error says so', async (t) => {
  const stack = await startStack(t)
  const one = await stack.addAccount()
  // created, in_progress, the reasoning item (2), the message item, its part, a first delta: then the socket goes.
  stack.fake.backend.script(one.accountId, { kind: 'drop', afterEvents: 7 })
  const stream = anthropic(stack).messages.stream({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
  let said = ''
  stream.on('text', (text) => { said += text })
  await assert.rejects(stream.finalMessage(), /upstream stream broke/)
  assert.ok(said.length > 0, 'content came first')
  const view = (await (await fetch(`${stack.url}/accounts`)).json() as Array<{ last_error: string | null }>)[0]!
  assert.match(view.last_error ?? '', /stream broke/)
})

test('a session\'s next turn: its metadata keys the backend\'s prompt cache, and the cached input reaches the SDK in Anthropic\'s parts', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const client = anthropic(stack)
  const metadata = { user_id: 'user_5f1e_account_0a4c_session_7d21' }
  const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'first question' }]
  const first = await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages, metadata })
  const key = lastUpstream(stack).prompt_cache_key as string
  assert.match(key, /^messages-[0-9a-f]{32}$/)
  assert.equal(first.usage.cache_read_input_tokens, 0)
  const firstInput = first.usage.input_tokens
  messages.push({ role: 'assistant', content: first.content }, { role: 'user', content: 'second question' })
  const stream = client.messages.stream({ model: 'claude-sonnet-4-6', max_tokens: 100, messages, metadata })
  const second = await stream.finalMessage()
  assert.equal(lastUpstream(stack).prompt_cache_key, key)
  // The backend found the first turn's input in its cache; Anthropic's parts add up to the whole input.
  assert.equal(second.usage.cache_read_input_tokens, firstInput)
  const upstreamInput = Math.max(1, Math.ceil(stack.fake.backend.requests.at(-1)!.rawBody.length / 4))
  assert.equal(second.usage.input_tokens + second.usage.cache_read_input_tokens!, upstreamInput)
})
