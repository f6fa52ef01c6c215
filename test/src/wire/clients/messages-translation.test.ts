import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AnswerCollector, StopSequences } from '../../../../src/wire/clients/answer.js'
import { anthropicMessage, MessagesEventWriter } from '../../../../src/wire/clients/messages-answer.js'
import { estimateTokens, messagesToResponses } from '../../../../src/wire/clients/messages-request.js'
import { DEFAULT_MODEL_ALIASES, parseModelAliases, resolveModel } from '../../../../src/wire/clients/model-aliases.js'
import { RefusedInput } from '../../../../src/wire/clients/responses-request.js'
import { ResponsesReader } from '../../../../src/wire/clients/responses-reader.js'
import { args, callAdded, callDone, completed, created, failed, parseSse, sse, text } from './responses-events.js'

function events (stream: string): Array<{ event: string | null, data: any }> {
  let out = ''
  const reader = new ResponsesReader(new MessagesEventWriter('claude-x', (piece) => { out += piece }))
  for (let i = 0; i < stream.length; i += 5) reader.push(stream.slice(i, i + 5))
  reader.end()
  return parseSse(out)
}

test('golden: a Messages request becomes this Codex Responses body', () => {
  const { body, model, stream } = messagesToResponses({
    model: 'claude-sonnet-4-6',
    max_tokens: 4096,
    system: 'Be Claude Code.',
    stream: true,
    temperature: 0.5,
    thinking: { type: 'enabled', budget_tokens: 5000 },
    tools: [{ name: 'Bash', description: 'run', input_schema: { type: 'object', properties: { command: { type: 'string' } } } }],
    tool_choice: { type: 'any', disable_parallel_tool_use: true },
    messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'hmm', signature: 's' }, { type: 'text', text: 'Running.' }, { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'a' }, { type: 'image', source: { type: 'url', url: 'https://x/y.png' } }] }, { type: 'text', text: 'next' }] }
    ]
  }, parseModelAliases(DEFAULT_MODEL_ALIASES.split(',')))
  assert.equal(model, 'claude-sonnet-4-6')
  assert.equal(stream, true)
  assert.deepEqual(body, {
    model: 'gpt-5-codex',
    instructions: 'Be Claude Code.',
    input: [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Running.' }] },
      { type: 'function_call', call_id: 'toolu_1', name: 'Bash', arguments: '{"command":"ls"}' },
      { type: 'function_call_output', call_id: 'toolu_1', output: [{ type: 'input_text', text: 'a' }, { type: 'input_image', image_url: 'https://x/y.png' }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'next' }] }
    ],
    tools: [{ type: 'function', name: 'Bash', description: 'run', parameters: { type: 'object', properties: { command: { type: 'string' } } }, strict: false }],
    tool_choice: 'required',
    parallel_tool_calls: false,
    store: false,
    stream: true,
    reasoning: { effort: 'medium', summary: 'auto' }
  })
  assert.ok(estimateTokens(body) > 10)
})

test('metadata.user_id becomes a prompt cache key: a hash, the same for one session, another for the next', () => {
  const aliases = parseModelAliases(DEFAULT_MODEL_ALIASES.split(','))
  const keyOf = (metadata: unknown): unknown => messagesToResponses({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], metadata }, aliases).body.prompt_cache_key
  const session = 'user_5f1e_account_0a4c_session_7d21'
  const key = keyOf({ user_id: session }) as string
  assert.match(key, /^messages-[0-9a-f]{32}$/)
  assert.equal(keyOf({ user_id: session }), key)
  assert.notEqual(keyOf({ user_id: `${session}x` }), key)
  assert.ok(!key.includes('5f1e') && !key.includes('7d21'), 'the client\'s identifiers are not passed on')
  for (const none of [undefined, null, {}, { user_id: '' }, { user_id: 7 }, 'user']) assert.equal(keyOf(none), undefined, JSON.stringify(none))
})

test('what cannot be translated is refused, naming the field', () => {
  const refused = (raw: unknown, param: string | null): void => {
    assert.throws(() => messagesToResponses(raw, []), (err: RefusedInput) => err instanceof RefusedInput && err.param === param)
  }
  refused('x', null)
  refused({ model: 'm', max_tokens: 0, messages: [{ role: 'user', content: 'x' }] }, 'max_tokens')
  refused({ model: 'm', messages: [{ role: 'system', content: 'x' }] }, 'messages[0].role')
  refused({ model: 'm', messages: [{ role: 'user', content: [{ type: 'document' }] }] }, 'messages[0].content[0].type')
  refused({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, 'tools[0]')
  refused({ model: 'm', messages: [{ role: 'user', content: 'x' }], tool_choice: { type: 'maybe' } }, 'tool_choice.type')
  refused({ model: 'm', messages: [{ role: 'user', content: 'x' }], stop_sequences: [''] }, 'stop_sequences')
})

test('golden: Anthropic\'s event sequence for text, then two tool calls (one with its arguments only in the done item)', () => {
  const out = events(sse(created, text('Hi'), text(''), text('!'),
    callAdded(2, 'call_a', 'one'), args(2, '{"x"'), args(2, ':1}'), callDone(2, 'call_a', 'one', '{"x":1}'),
    callAdded(3, 'call_b', 'two'), callDone(3, 'call_b', 'two', '{}'),
    completed))
  assert.ok(out.every((e) => e.event === e.data.type), 'each event is named as its type')
  assert.deepEqual(out.map((e) => e.data), [
    { type: 'message_start', message: { id: 'msg_abc', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } } },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: '!' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_a', name: 'one', input: {} } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"x"' } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ':1}' } },
    { type: 'content_block_stop', index: 1 },
    { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'call_b', name: 'two', input: {} } },
    { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{}' } },
    { type: 'content_block_stop', index: 2 },
    { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { input_tokens: 6, output_tokens: 7, cache_read_input_tokens: 4 } },
    { type: 'message_stop' }
  ])
})

test('golden: a cut mid-tool-call and response.failed after content end in Anthropic\'s error event, no message_stop', () => {
  for (const [stream, message] of [
    [sse(created, callAdded(0, 'call_a', 'one'), args(0, '{"x"')), /ended before the answer was complete/],
    [sse(created, text('partial'), failed), /it broke/]
  ] as const) {
    const out = events(stream)
    const last = out.at(-1)!
    assert.equal(last.event, 'error')
    assert.equal(last.data.error.type, 'api_error')
    assert.match(last.data.error.message, message)
    assert.ok(!out.some((e) => e.event === 'message_stop' || e.event === 'message_delta'))
  }
})

test('golden: a whole answer; the output limit is max_tokens', () => {
  const collector = new AnswerCollector()
  const reader = new ResponsesReader(collector)
  reader.push(sse(created, text('Partly'), callAdded(1, 'call_a', 'one'), callDone(1, 'call_a', 'one', '{"k":"v"}'), { type: 'response.incomplete', response: { incomplete_details: { reason: 'max_output_tokens' } } }))
  reader.end()
  assert.deepEqual(anthropicMessage(collector.answer, 'claude-x'), {
    id: 'msg_abc',
    type: 'message',
    role: 'assistant',
    model: 'claude-x',
    content: [{ type: 'text', text: 'Partly' }, { type: 'tool_use', id: 'call_a', name: 'one', input: { k: 'v' } }],
    stop_reason: 'max_tokens',
    stop_sequence: null,
    usage: { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0 }
  })
})

test('golden: stop sequences are applied here, even split across deltas; the rest of the answer is swallowed', () => {
  let out = ''
  const reader = new ResponsesReader(new StopSequences(new MessagesEventWriter('claude-x', (piece) => { out += piece }), ['END', '\n\nHuman:']))
  reader.push(sse(created, text('one two E'), text('N'), text('D three'), callAdded(2, 'call_a', 'one'), completed))
  reader.end()
  const data = parseSse(out).map((e) => e.data)
  const said = data.filter((d) => d.type === 'content_block_delta').map((d) => d.delta.text).join('')
  assert.equal(said, 'one two ')
  assert.ok(!data.some((d) => d.type === 'content_block_start' && d.content_block.type === 'tool_use'))
  assert.deepEqual(data.at(-2).delta, { stop_reason: 'stop_sequence', stop_sequence: 'END' })
  assert.deepEqual(data.at(-2).usage, { input_tokens: 6, output_tokens: 7, cache_read_input_tokens: 4 }, 'the input the cache did not hold, and what it did: 10 in all')

  const collector = new AnswerCollector()
  const whole = new ResponsesReader(new StopSequences(collector, ['two']))
  whole.push(sse(created, text('one two'), completed))
  whole.end()
  assert.equal(anthropicMessage(collector.answer, 'm').stop_sequence, 'two')
  assert.deepEqual(anthropicMessage(collector.answer, 'm').content, [{ type: 'text', text: 'one ' }])
})

test('the default aliases know Claude\'s old and new names; a * matches anywhere; unknown names pass', () => {
  const defaults = parseModelAliases(DEFAULT_MODEL_ALIASES.split(','))
  assert.deepEqual(resolveModel('claude-3-5-haiku-20241022', defaults), { model: 'gpt-5-codex', effort: 'low' })
  assert.deepEqual(resolveModel('claude-opus-4-1-20250805', defaults), { model: 'gpt-5-codex', effort: 'high' })
  assert.deepEqual(resolveModel('claude-sonnet-4-6', defaults), { model: 'gpt-5-codex', effort: 'medium' })
  assert.deepEqual(resolveModel('gpt-5.3-codex', defaults), { model: 'gpt-5.3-codex', effort: null })
  const own = parseModelAliases(['gpt-5.1-*-max=gpt-5.1-codex-max:xhigh'])
  assert.deepEqual(resolveModel('gpt-5.1-codex-max', own), { model: 'gpt-5.1-codex-max', effort: 'xhigh' })
  assert.deepEqual(resolveModel('gpt-5x1-codex-max', own).effort, null, 'a dot is a dot')
  assert.throws(() => parseModelAliases(['a b=c']), /pattern=model/)
})
