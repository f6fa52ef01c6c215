import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AnswerCollector } from '../../../../src/wire/clients/answer.js'
import { chatCompletion, ChatChunkWriter } from '../../../../src/wire/clients/chat-answer.js'
import { chatToResponses } from '../../../../src/wire/clients/chat-request.js'
import { parseModelAliases } from '../../../../src/wire/clients/model-aliases.js'
import { RefusedInput } from '../../../../src/wire/clients/responses-request.js'
import { ResponsesReader } from '../../../../src/wire/clients/responses-reader.js'
import { args, callAdded, callDone, completed, created, failed, parseSse, sse, text } from './responses-events.js'

function chunks (stream: string, includeUsage = false): Array<{ event: string | null, data: any }> {
  let out = ''
  const reader = new ResponsesReader(new ChatChunkWriter('client-model', includeUsage, (piece) => { out += piece }))
  // Fed in small pieces: events split across chunks must not matter.
  for (let i = 0; i < stream.length; i += 7) reader.push(stream.slice(i, i + 7))
  reader.end()
  return parseSse(out)
}

test('golden: a Chat Completions request becomes this Codex Responses body', () => {
  const aliases = parseModelAliases(['gpt-5-high=gpt-5-codex:high'])
  const { body, model, stream, includeUsage } = chatToResponses({
    model: 'gpt-5-high',
    messages: [
      { role: 'system', content: 'Rule one.' },
      { role: 'developer', content: [{ type: 'text', text: 'Rule two.' }] },
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'rain' }
    ],
    tools: [{ type: 'function', function: { name: 'weather', parameters: { type: 'object' } } }],
    tool_choice: { type: 'function', function: { name: 'weather' } },
    parallel_tool_calls: false,
    response_format: { type: 'json_object' },
    stream: true,
    stream_options: { include_usage: true },
    temperature: 1,
    stop: ['\n'],
    max_tokens: 10,
    prompt_cache_key: 'thread-9'
  }, aliases)
  assert.equal(model, 'gpt-5-high')
  assert.equal(stream, true)
  assert.equal(includeUsage, true)
  assert.deepEqual(body, {
    model: 'gpt-5-codex',
    instructions: 'Rule one.\n\nRule two.',
    input: [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Weather?' }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Checking.' }] },
      { type: 'function_call', call_id: 'call_1', name: 'weather', arguments: '{"city":"Oslo"}' },
      { type: 'function_call_output', call_id: 'call_1', output: 'rain' }
    ],
    tools: [{ type: 'function', name: 'weather', parameters: { type: 'object' }, strict: false }],
    tool_choice: { type: 'function', name: 'weather' },
    parallel_tool_calls: false,
    store: false,
    stream: true,
    reasoning: { effort: 'high', summary: 'auto' },
    text: { format: { type: 'json_object' } },
    prompt_cache_key: 'thread-9'
  })
})

test('no system message: the backend still gets instructions; the request\'s effort wins over the alias\'s', () => {
  const { body } = chatToResponses({ model: 'gpt-5-high', reasoning_effort: 'low', messages: [{ role: 'user', content: 'x' }] }, parseModelAliases(['gpt-5-high=gpt-5-codex:high']))
  assert.equal(typeof body.instructions, 'string')
  assert.notEqual(body.instructions, '')
  assert.deepEqual(body.reasoning, { effort: 'low', summary: 'auto' })
})

test('what cannot be translated is refused, naming the field', () => {
  const refused = (raw: unknown, param: string | null): void => {
    assert.throws(() => chatToResponses(raw, []), (err: RefusedInput) => err instanceof RefusedInput && err.param === param)
  }
  refused([], null)
  refused({ messages: [{ role: 'user', content: 'x' }] }, 'model')
  refused({ model: 'm', messages: [] }, 'messages')
  refused({ model: 'm', n: 3, messages: [{ role: 'user', content: 'x' }] }, 'n')
  refused({ model: 'm', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }, 'messages[0].content[0].type')
  refused({ model: 'm', messages: [{ role: 'function', content: 'x' }] }, 'messages[0].role')
  refused({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'web_search' }] }, 'tools[0]')
  refused({ model: 'm', messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'extreme' }, 'reasoning_effort')
  refused({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream')
})

test('golden: text deltas become chunks (empty deltas skipped), one finish_reason, usage last, then [DONE]', () => {
  const out = chunks(sse(created, text('Hel'), text(''), text('lo'), completed), true)
  assert.deepEqual(out.map((e) => e.data === '[DONE]' ? e.data : [e.data.choices[0]?.delta ?? null, e.data.choices[0]?.finish_reason ?? null]), [
    [{ role: 'assistant', content: '' }, null],
    [{ content: 'Hel' }, null],
    [{ content: 'lo' }, null],
    [{}, 'stop'],
    [null, null],
    '[DONE]'
  ])
  assert.deepEqual(out[4]!.data.usage, { prompt_tokens: 10, completion_tokens: 7, total_tokens: 17, prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 3 } })
  assert.ok(out.slice(0, 5).every((e) => e.data.id === 'chatcmpl-abc' && e.data.model === 'client-model' && e.data.created === 1700000000))
})

test('golden: parallel tool calls keep their indexes; arguments only in the done item still arrive', () => {
  const stream = sse(created,
    callAdded(0, 'call_a', 'one'), args(0, '{"x"'), args(0, ':1}'), callDone(0, 'call_a', 'one', '{"x":1}'),
    callAdded(1, 'call_b', 'two'), callDone(1, 'call_b', 'two', '{"y":2}'),
    completed)
  const deltas = chunks(stream).filter((e) => e.data !== '[DONE]').map((e) => e.data.choices[0])
  assert.deepEqual(deltas.slice(1).map((choice) => [choice.delta.tool_calls ?? null, choice.finish_reason]), [
    [[{ index: 0, id: 'call_a', type: 'function', function: { name: 'one', arguments: '' } }], null],
    [[{ index: 0, function: { arguments: '{"x"' } }], null],
    [[{ index: 0, function: { arguments: ':1}' } }], null],
    [[{ index: 1, id: 'call_b', type: 'function', function: { name: 'two', arguments: '' } }], null],
    [[{ index: 1, function: { arguments: '{"y":2}' } }], null],
    [null, 'tool_calls']
  ])
})

test('golden: a stream cut mid-tool-call, and response.failed after content, end in an error event without a finish_reason or [DONE]', () => {
  for (const [stream, message] of [
    [sse(created, callAdded(0, 'call_a', 'one'), args(0, '{"x"')), /ended before the answer was complete/],
    [sse(created, text('partial'), failed), /it broke/]
  ] as const) {
    const out = chunks(stream)
    const last = out.at(-1)!
    assert.match(last.data.error.message, message)
    assert.ok(out.slice(0, -1).every((e) => e.data.choices[0].finish_reason === null))
    assert.ok(!out.some((e) => e.data === '[DONE]'))
  }
})

test('golden: a whole answer gathers text, reasoning and tool calls', () => {
  const collector = new AnswerCollector()
  const reader = new ResponsesReader(collector)
  reader.push(sse(created, { type: 'response.reasoning_summary_text.delta', delta: 'thinking' }, text('Calling.'), callAdded(2, 'call_a', 'one'), args(2, '{}'), callDone(2, 'call_a', 'one', '{}'), completed))
  reader.end()
  assert.deepEqual(chatCompletion(collector.answer, 'client-model'), {
    id: 'chatcmpl-abc',
    object: 'chat.completion',
    created: 1700000000,
    model: 'client-model',
    choices: [{
      index: 0,
      message: { role: 'assistant', content: 'Calling.', refusal: null, reasoning_content: 'thinking', tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'one', arguments: '{}' } }] },
      logprobs: null,
      finish_reason: 'tool_calls'
    }],
    usage: { prompt_tokens: 10, completion_tokens: 7, total_tokens: 17, prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 3 } }
  })
})

test('response.incomplete for the output limit finishes with length', () => {
  const out = chunks(sse(created, text('a'), { type: 'response.incomplete', response: { incomplete_details: { reason: 'max_output_tokens' }, usage: null } }))
  assert.equal(out.at(-2)!.data.choices[0].finish_reason, 'length')
})
