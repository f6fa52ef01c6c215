import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startStack, type Stack } from '../../helpers/stack.js'

const openai = (stack: Stack, apiKey = 'unused-key-000'): OpenAI => new OpenAI({ baseURL: `${stack.url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 })
const lastUpstream = (stack: Stack): Record<string, any> => stack.fake.backend.requests.at(-1)!.body as Record<string, any>

test('a whole chat completion: the backend gets a valid Codex request and the SDK reads the answer, usage included', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const answer = await openai(stack).chat.completions.create({
    model: 'gpt-5-codex',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'hello' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }],
    reasoning_effort: 'high',
    temperature: 0.2,
    max_completion_tokens: 50,
    response_format: { type: 'json_schema', json_schema: { name: 'reply', schema: { type: 'object', properties: {} }, strict: true } }
  })
  assert.equal(answer.object, 'chat.completion')
  assert.equal(answer.model, 'gpt-5-codex')
  assert.equal(answer.choices[0]!.message.content, 'served by one@example.com: hello')
  assert.equal(answer.choices[0]!.finish_reason, 'stop')
  assert.ok(answer.usage!.prompt_tokens > 0 && answer.usage!.completion_tokens > 0)
  assert.equal(answer.usage!.total_tokens, answer.usage!.prompt_tokens + answer.usage!.completion_tokens)
  const sent = lastUpstream(stack)
  assert.equal(stack.fake.backend.requests.at(-1)!.path, '/backend-api/codex/responses')
  assert.equal(sent.stream, true)
  assert.equal(sent.store, false)
  assert.equal(sent.instructions, 'Be brief.')
  assert.deepEqual(sent.input, [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }, { type: 'input_image', image_url: 'data:image/png;base64,AAAA' }] }])
  assert.deepEqual(sent.reasoning, { effort: 'high', summary: 'auto' })
  assert.deepEqual(sent.text, { format: { type: 'json_schema', name: 'reply', schema: { type: 'object', properties: {} }, strict: true } })
  assert.equal(sent.temperature, undefined, 'the backend takes no sampling settings')
  assert.equal(sent.max_output_tokens, undefined)
})

test('a streamed chat completion: role first, content deltas, exactly one finish_reason, a usage chunk when asked', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const stream = await openai(stack).chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'stream please' }], stream: true, stream_options: { include_usage: true } })
  const chunks: OpenAI.Chat.ChatCompletionChunk[] = []
  for await (const chunk of stream) chunks.push(chunk)
  assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant')
  const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')
  assert.equal(text, 'served by one@example.com: stream please')
  const finishes = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.finish_reason)).filter((reason) => reason !== null)
  assert.deepEqual(finishes, ['stop'])
  const last = chunks.at(-1)!
  assert.deepEqual(last.choices, [])
  assert.ok(last.usage!.prompt_tokens > 0)
  assert.ok(chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.id === chunks[0]!.id))
})

test('parallel tool calls stream with stable indexes, and the follow-up with tool results reaches the backend as function_call items', async (t) => {
  const stack = await startStack(t)
  const one = await stack.addAccount({ email: 'one@example.com' })
  stack.fake.backend.script(one.accountId, { kind: 'tool_calls', calls: [{ name: 'read_file', arguments: '{"path":"a.txt"}' }, { name: 'read_file', arguments: '{"path":"b.txt"}' }] })
  const client = openai(stack)
  const tools = [{ type: 'function' as const, function: { name: 'read_file', description: 'Reads a file', parameters: { type: 'object', properties: { path: { type: 'string' } } } } }]
  const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'read both' }]
  const stream = await client.chat.completions.create({ model: 'gpt-5-codex', messages, tools, tool_choice: 'auto', parallel_tool_calls: true, stream: true })
  const calls: Array<{ id: string, name: string, arguments: string }> = []
  const finishes: string[] = []
  for await (const chunk of stream) {
    const choice = chunk.choices[0]
    if (choice?.finish_reason) finishes.push(choice.finish_reason)
    for (const delta of choice?.delta.tool_calls ?? []) {
      calls[delta.index] ??= { id: '', name: '', arguments: '' }
      const call = calls[delta.index]!
      call.id += delta.id ?? ''
      call.name += delta.function?.name ?? ''
      call.arguments += delta.function?.arguments ?? ''
    }
  }
  assert.deepEqual(finishes, ['tool_calls'])
  assert.deepEqual(calls.map((call) => [call.name, JSON.parse(call.arguments)]), [['read_file', { path: 'a.txt' }], ['read_file', { path: 'b.txt' }]])
  const sentTools = lastUpstream(stack).tools
  assert.deepEqual(sentTools, [{ type: 'function', name: 'read_file', description: 'Reads a file', parameters: tools[0]!.function.parameters, strict: false }])

  messages.push({ role: 'assistant', content: null, tool_calls: calls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } })) })
  messages.push({ role: 'tool', tool_call_id: calls[0]!.id, content: 'A' }, { role: 'tool', tool_call_id: calls[1]!.id, content: 'B' })
  const answer = await client.chat.completions.create({ model: 'gpt-5-codex', messages, tools })
  assert.equal(answer.choices[0]!.finish_reason, 'stop')
  const input = lastUpstream(stack).input as Array<Record<string, unknown>>
  assert.deepEqual(input.slice(1), [
    { type: 'function_call', call_id: calls[0]!.id, name: 'read_file', arguments: '{"path":"a.txt"}' },
    { type: 'function_call', call_id: calls[1]!.id, name: 'read_file', arguments: '{"path":"b.txt"}' },
    { type: 'function_call_output', call_id: calls[0]!.id, output: 'A' },
    { type: 'function_call_output', call_id: calls[1]!.id, output: 'B' }
  ])
})

test('errors in OpenAI\'s shape: refused input, the backend\'s 400 for an unknown model, a wrong API key, an empty pool', async (t) => {
  const stack = await startStack(t, { settings: { apiKey: ['right-key-123456'] } })
  const client = openai(stack, 'right-key-123456')
  await assert.rejects(client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'x' }] }), (err: InstanceType<typeof OpenAI.APIError>) => {
    assert.equal(err.status, 503)
    assert.match(err.message, /no accounts yet/)
    assert.ok(err.message.includes(`codex-eq login --server ${stack.url}`), 'says how to add one')
    return true
  })
  const one = await stack.addAccount()
  await assert.rejects(client.chat.completions.create({ model: 'gpt-5-codex', n: 2, messages: [{ role: 'user', content: 'x' }] }), (err: InstanceType<typeof OpenAI.BadRequestError>) => {
    assert.ok(err instanceof OpenAI.BadRequestError)
    assert.equal((err.error as Record<string, unknown>).param, 'n')
    return true
  })
  const calls = stack.fake.backend.requests.length
  await assert.rejects(client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'robot' as 'user', content: 'x' }] }), OpenAI.BadRequestError)
  assert.equal(stack.fake.backend.requests.length, calls, 'refused input never reaches the backend')
  stack.fake.backend.script(one.accountId, { kind: 'status', status: 400, body: { detail: "The 'no-such-model' model is not supported when using Codex with a ChatGPT account." } })
  await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), (err: InstanceType<typeof OpenAI.BadRequestError>) => {
    assert.ok(err instanceof OpenAI.BadRequestError)
    assert.match(err.message, /'no-such-model' model is not supported/)
    return true
  })
  assert.equal(lastUpstream(stack).model, 'no-such-model', 'an unknown name passes through')
  await assert.rejects(openai(stack, 'wrong-key-1234567').chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'x' }] }), OpenAI.AuthenticationError)
})

test('failover under Chat Completions: a usage limit and an overload before the first byte move the request on unseen', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com' })
  const third = await stack.addAccount({ email: 'third@example.com' })
  stack.fake.backend.setExhausted(first.accountId, { resetsInSeconds: 3600 })
  const client = openai(stack)
  const whole = await client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'hi' }] }).withResponse()
  assert.equal(whole.data.choices[0]!.message.content, 'served by second@example.com: hi')
  assert.equal(whole.response.headers.get('x-codex-eq-account'), second.id)

  stack.fake.backend.script(second.accountId, { kind: 'stream_failed', code: 'server_is_overloaded', message: 'overloaded' })
  const stream = await client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'again' }], stream: true })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
  assert.equal(text, 'served by third@example.com: again')

  stack.fake.backend.setExhausted(third.accountId, { resetsInSeconds: 600 })
  stack.fake.backend.script(second.accountId, { kind: 'usage_limit', resetsInSeconds: 600 })
  await assert.rejects(client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'x' }] }), (err: InstanceType<typeof OpenAI.RateLimitError>) => {
    assert.ok(err instanceof OpenAI.RateLimitError)
    assert.match(err.message, /usage limit/)
    return true
  })
})

test('a failure after content becomes an in-stream error the SDK raises; a whole answer gets an error status', async (t) => {
  const stack = await startStack(t)
  const one = await stack.addAccount()
  stack.fake.backend.script(one.accountId, { kind: 'stream_failed', code: 'server_error', message: 'the model broke down', afterContent: true })
  const client = openai(stack)
  const stream = await client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'x' }], stream: true })
  let text = ''
  await assert.rejects((async () => { for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '' })(), /the model broke down/)
  assert.ok(text.length > 0, 'content came first')
  stack.fake.backend.script(one.accountId, { kind: 'stream_failed', code: 'context_length_exceeded', message: 'Your input exceeds the context window', afterContent: true })
  await assert.rejects(client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'x' }] }), (err: InstanceType<typeof OpenAI.BadRequestError>) => {
    assert.ok(err instanceof OpenAI.BadRequestError)
    assert.match(err.message, /exceeds the context window/)
    return true
  })
})

test('a usage limit after content under Chat Completions rests the account, as for /v1/responses: the next request goes to another', async (t) => {
  const stack = await startStack(t)
  const one = await stack.addAccount({ email: 'one@example.com' })
  await stack.addAccount({ email: 'two@example.com' })
  const resetsAt = Math.floor(Date.now() / 1000) + 900
  stack.fake.backend.script(one.accountId, { kind: 'stream_failed', code: 'usage_limit_reached', message: 'The usage limit has been reached', resetsAt, afterContent: true })
  const client = openai(stack)
  const stream = await client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'x' }], stream: true })
  await assert.rejects((async () => { for await (const chunk of stream) void chunk })(), /usage limit has been reached/)
  const views = await (await fetch(`${stack.url}/accounts`)).json() as Array<{ id: string, status: string, disabled_source: string | null }>
  const resting = views.find((view) => view.id === one.id)!
  assert.equal(resting.status, 'cooling')
  assert.equal(resting.disabled_source, 'stream.resets_at')
  const next = await client.chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'next' }] })
  assert.equal(next.choices[0]!.message.content, 'served by two@example.com: next')
})

test('GET /v1/models: the backend\'s list in OpenAI\'s shape for SDKs, the backend\'s own answer for the Codex CLI', async (t) => {
  const stack = await startStack(t, { settings: { modelAlias: ['gpt-5-high=gpt-5-codex:high', 'claude-*=gpt-5-codex'] } })
  await stack.addAccount()
  const ids = []
  for await (const model of openai(stack).models.list()) ids.push(model.id)
  assert.deepEqual(ids, ['gpt-5.3-codex', 'gpt-5-high'])
  const before = stack.fake.backend.requests.length
  for await (const model of openai(stack).models.list()) assert.ok(model.id)
  assert.equal(stack.fake.backend.requests.length, before, 'the list is cached')
  const codex = await fetch(`${stack.url}/v1/models?client_version=0.171.0`)
  assert.deepEqual(Object.keys(await codex.json() as object), ['models'])
  assert.equal(stack.fake.backend.requests.at(-1)!.path, '/backend-api/codex/models?client_version=0.171.0')
})

test('GET /v1/models/{id}: the SDK retrieves a listed or aliased model in OpenAI\'s shape, an unknown one is a 404; the Codex CLI gets the backend\'s answer', async (t) => {
  const stack = await startStack(t, { settings: { modelAlias: ['gpt-5-high=gpt-5-codex:high', 'claude-*=gpt-5-codex'] } })
  await stack.addAccount()
  const client = openai(stack)
  assert.deepEqual({ ...await client.models.retrieve('gpt-5.3-codex') }, { id: 'gpt-5.3-codex', object: 'model', created: 0, owned_by: 'openai' })
  const before = stack.fake.backend.requests.length
  assert.equal((await client.models.retrieve('gpt-5-high')).id, 'gpt-5-high')
  assert.equal((await client.models.retrieve('claude-sonnet-4-5')).id, 'claude-sonnet-4-5', 'a name a * alias maps')
  assert.equal(stack.fake.backend.requests.length, before, 'the cached list answers')
  await assert.rejects(client.models.retrieve('no-such-model'), (err: InstanceType<typeof OpenAI.NotFoundError>) => {
    assert.ok(err instanceof OpenAI.NotFoundError)
    assert.equal(err.code, 'model_not_found')
    assert.match(err.message, /no-such-model/)
    return true
  })
  const codex = await fetch(`${stack.url}/v1/models/gpt-5.3-codex?client_version=0.171.0`)
  assert.equal(stack.fake.backend.requests.at(-1)!.path, '/backend-api/codex/models/gpt-5.3-codex?client_version=0.171.0')
  assert.equal(codex.status, 404, 'the backend\'s own answer (the fake has no such route)')
  assert.deepEqual(await codex.json(), { detail: 'Not Found' })
})

test('model aliases: the backend gets the mapped model and effort; the answer keeps the client\'s name', async (t) => {
  const stack = await startStack(t, { settings: { modelAlias: ['gpt-5-high=gpt-5-codex:high'] } })
  await stack.addAccount()
  const answer = await openai(stack).chat.completions.create({ model: 'gpt-5-high', messages: [{ role: 'user', content: 'x' }] })
  assert.equal(answer.model, 'gpt-5-high')
  assert.equal(lastUpstream(stack).model, 'gpt-5-codex')
  assert.deepEqual(lastUpstream(stack).reasoning, { effort: 'high', summary: 'auto' })
})

test('stop is applied to a streamed chat answer here, finishing with stop', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const stream = await openai(stack).chat.completions.create({ model: 'gpt-5-codex', messages: [{ role: 'user', content: 'hello' }], stop: ['@example'], stream: true })
  let text = ''
  const finishes: string[] = []
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? ''
    if (chunk.choices[0]?.finish_reason) finishes.push(chunk.choices[0].finish_reason)
  }
  assert.equal(text, 'served by one')
  assert.deepEqual(finishes, ['stop'])
  assert.equal(lastUpstream(stack).stop, undefined)
})

test('a follow-up turn on the same prompt_cache_key: the backend\'s cached input tokens reach the SDK, whole and streamed', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const client = openai(stack)
  const history: OpenAI.ChatCompletionMessageParam[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'first question' }]
  const first = await client.chat.completions.create({ model: 'gpt-5-codex', messages: history, prompt_cache_key: 'conv-7' })
  assert.equal(first.usage!.prompt_tokens_details?.cached_tokens, 0)
  history.push({ role: 'assistant', content: first.choices[0]!.message.content! }, { role: 'user', content: 'second question' })
  const second = await client.chat.completions.create({ model: 'gpt-5-codex', messages: history, prompt_cache_key: 'conv-7' })
  // The backend found the first turn's input in its cache: all of it, now part of a longer one.
  assert.equal(second.usage!.prompt_tokens_details?.cached_tokens, first.usage!.prompt_tokens)
  assert.ok(second.usage!.prompt_tokens > first.usage!.prompt_tokens)
  history.push({ role: 'assistant', content: second.choices[0]!.message.content! }, { role: 'user', content: 'third question' })
  const stream = await client.chat.completions.create({ model: 'gpt-5-codex', messages: history, prompt_cache_key: 'conv-7', stream: true, stream_options: { include_usage: true } })
  let usage: OpenAI.CompletionUsage | null | undefined
  for await (const chunk of stream) usage = chunk.usage ?? usage
  assert.equal(usage?.prompt_tokens_details?.cached_tokens, second.usage!.prompt_tokens)
  assert.equal(lastUpstream(stack).prompt_cache_key, 'conv-7')
})
