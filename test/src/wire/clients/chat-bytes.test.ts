import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chatFromBytes } from '../../../../src/wire/clients/chat-bytes.js'
import { CHAT_COMPLETIONS, clientJson } from '../../../../src/wire/clients/client-apis.js'
import { chatToResponses, type ChatRequest } from '../../../../src/wire/clients/chat-request.js'
import { JsonCursor } from '../../../../src/wire/clients/json-cursor.js'
import { parseModelAliases } from '../../../../src/wire/clients/model-aliases.js'
import { jsonBytes } from '../../../../src/wire/clients/raw-json.js'

const ALIASES = parseModelAliases(['gpt-5-high=gpt-5-codex:high', 'claude-*=gpt-5-codex'])
const long = (label: string): string => `${label} ${'lorem ipsum dolor '.repeat(20)}`

/** What each reading makes of a body: the backend's bytes and the answer's settings, or the error it throws. */
function both (body: string | Buffer): { fast: string | null, general: string } {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body)
  const outcome = (read: () => ChatRequest | null): string | null => {
    try {
      const request = read()
      if (request === null) return null
      return JSON.stringify({ bytes: jsonBytes(request.body).toString('utf8'), model: request.model, stream: request.stream, includeUsage: request.includeUsage, stop: request.stopSequences })
    } catch (err) {
      return `refused: ${(err as Error).message}`
    }
  }
  return { fast: outcome(() => chatFromBytes(bytes, ALIASES)), general: outcome(() => chatToResponses(clientJson(bytes), ALIASES))! }
}

function agentBody (): Record<string, unknown> {
  return {
    model: 'gpt-5-codex',
    messages: [
      { role: 'system', content: long('You are a coding agent') },
      { role: 'developer', content: 'Keep answers "short" \\ precise.\n' },
      { role: 'user', content: long('<environment_context>') },
      { role: 'user', content: 'Fix the test in src/parser.ts — é 漢字 😀' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'shell', arguments: '{"command":["cat","src/parser.ts"]}' } }, { id: 'call_2', type: 'function', function: { name: 'read', arguments: long('{"path":"') } }] },
      { role: 'tool', tool_call_id: 'call_1', content: long('export function parse\n\t"x"') },
      { role: 'tool', tool_call_id: 'call_2', content: '' },
      { role: 'assistant', content: 'Done.', name: 'codex' }
    ],
    tools: [{ type: 'function', function: { name: 'shell', description: long('Runs a command'), parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } } } } }],
    tool_choice: 'auto',
    parallel_tool_calls: false,
    reasoning_effort: 'medium',
    stream: true,
    stream_options: { include_usage: true },
    prompt_cache_key: 'conv-1',
    temperature: 0.2,
    max_tokens: 1000,
    user: 'someone',
    n: 1
  }
}

test('a coding agent\'s chat request is read from its bytes, and the backend gets the same bytes as from the parsed reading', () => {
  const body = agentBody()
  for (const text of [JSON.stringify(body), JSON.stringify(body, null, 2), JSON.stringify({ ...body, model: 'gpt-5-high', reasoning_effort: null, stream: null, prompt_cache_key: null, tools: null })]) {
    const { fast, general } = both(text)
    assert.notEqual(fast, null, 'read from the bytes')
    assert.equal(fast, general)
    assert.doesNotMatch(general, /^refused/)
  }
  // Twice: the second time the tools list is a kept one, found without a scan.
  assert.equal(both(JSON.stringify(body)).fast, both(JSON.stringify(body)).general)
  const translated = CHAT_COMPLETIONS.translate(Buffer.from(JSON.stringify(body)), ALIASES)
  assert.deepEqual(translated.known, { conversation: 'conv-1', carriesBlobs: false, model: 'gpt-5-codex' })
  const sent = JSON.parse(translated.body.whole().toString('utf8'))
  assert.equal(sent.input.length, 7)
  assert.deepEqual(sent.input[1], { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Fix the test in src/parser.ts — é 漢字 😀' }] })
  assert.deepEqual(sent.input[3], { type: 'function_call', call_id: 'call_2', name: 'read', arguments: long('{"path":"') })
  assert.equal(sent.instructions, `${long('You are a coding agent')}\n\nKeep answers "short" \\ precise.\n`)
})

test('what the reader does not take goes to the parsed reading, which answers it (refusals and JSON errors included)', () => {
  const body = agentBody()
  const declined = [
    { ...body, messages: [{ role: 'user', content: [{ type: 'text', text: 'parts' }] }] },
    { ...body, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }] },
    { ...body, response_format: { type: 'json_object' } },
    { ...body, stop: ['END'] },
    { ...body, tool_choice: { type: 'function', function: { name: 'shell' } } },
    { ...body, n: 2 },
    { ...body, metadata: { a: 1 } },
    { ...body, messages: [] },
    { ...body, messages: [{ role: 'robot', content: 'x' }] },
    { ...body, messages: [{ role: 'user', content: null }] },
    { ...body, messages: [{ role: 'tool', content: 'no id' }] },
    { ...body, reasoning_effort: 'extreme' },
    { ...body, model: 7 }
  ].map((value) => JSON.stringify(value))
  const written = [
    JSON.stringify(body).replace('"model":"gpt-5-codex"', '"model":"gpt-5-codex","model":"gpt-5-high"'),
    JSON.stringify(body).replace('"model"', '"mod\\u0065l"'),
    JSON.stringify(body).replace('Done.', 'Done.\\x'),
    JSON.stringify(body).replace('Done.', 'Done.\u0001'),
    `${JSON.stringify(body)} trailing`,
    `\ufeff${JSON.stringify(body)}`,
    JSON.stringify([body]),
    JSON.stringify(body).replace('"n":1', '"n":01')
  ]
  let refused = 0
  for (const text of [...declined, ...written]) {
    const { fast, general } = both(text)
    assert.equal(fast, null, text.slice(0, 80))
    // Through the client API: what the parsed reading makes of it, or its error.
    let viaApi: string
    try {
      viaApi = CHAT_COMPLETIONS.translate(Buffer.from(text), ALIASES).body.whole().toString('utf8')
    } catch (err) {
      viaApi = `refused: ${(err as Error).message}`
    }
    if (general.startsWith('refused')) refused++
    assert.equal(viaApi, general.startsWith('refused') ? general : JSON.parse(general).bytes)
  }
  assert.ok(refused >= 10, 'most of these are refused')
})

/** A random chat request, in the shapes clients send and some they should not. */
function randomBody (random: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!
  const strings = ['', 'hi', 'tab\tand "quotes" and \\ back', 'é 漢字 😀', 'a/b', long('long'), long('long "escaped"\n'), long('long é'), '\u2028']
  const ids = ['call_1', 'c-2', 'toolu_01', 'é']
  const message = (): Record<string, unknown> => {
    const role = pick(['system', 'developer', 'user', 'user', 'assistant', 'tool'])
    const m: Record<string, unknown> = { role }
    if (random() < 0.9) m.content = role === 'user' ? (random() < 0.1 ? [{ type: 'text', text: pick(strings) }] : pick(strings)) : (random() < 0.2 ? null : pick(strings))
    if (role === 'assistant' && random() < 0.5) m.tool_calls = [...Array(1 + Math.floor(random() * 2))].map(() => ({ id: pick(ids), type: 'function', function: { name: pick(['shell', 'read']), ...(random() < 0.8 ? { arguments: random() < 0.2 ? null : pick(strings) } : {}) } }))
    if (role === 'tool' && random() < 0.95) m.tool_call_id = pick(ids)
    if (random() < 0.05) m.name = 'someone'
    return m
  }
  const fields: Array<[string, () => unknown]> = [
    ['tools', () => random() < 0.2 ? null : [{ type: 'function', function: { name: pick(['shell', 'read']), description: pick(strings), parameters: { type: 'object', properties: {} } } }]],
    ['tool_choice', () => pick(['auto', 'none', 'required', null, { type: 'function', function: { name: 'shell' } }])],
    ['parallel_tool_calls', () => pick([true, false, null])],
    ['reasoning_effort', () => pick(['low', 'medium', 'high', null, 'extreme'])],
    ['stream', () => pick([true, false, null])],
    ['stream_options', () => pick([{ include_usage: true }, { include_usage: false }, null, {}])],
    ['prompt_cache_key', () => pick(['conv-1', null])],
    ['n', () => pick([1, null, 2])],
    ['temperature', () => pick([0, 0.7, 1e-3])],
    ['max_tokens', () => 100],
    ['user', () => 'someone'],
    ['stop', () => 'END']
  ]
  const body: Record<string, unknown> = { model: pick(['gpt-5-codex', 'gpt-5-high', 'claude-sonnet-4']), messages: [...Array(1 + Math.floor(random() * 5))].map(message) }
  for (const [name, value] of fields) if (random() < 0.3) body[name] = value()
  const entries = Object.entries(body).sort(() => random() - 0.5)
  return JSON.stringify(Object.fromEntries(entries), null, random() < 0.3 ? 2 : undefined)
}

test('random chat requests: whatever the reader takes, it makes exactly what the parsed reading makes, and it takes most', () => {
  let seed = 7
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  }
  let taken = 0
  const runs = 400
  for (let i = 0; i < runs; i++) {
    const text = randomBody(random)
    const { fast, general } = both(text)
    if (fast === null) continue
    taken++
    assert.equal(fast, general, text)
  }
  assert.ok(taken > runs / 4, `read from the bytes: ${taken} of ${runs}`)
})

test('the cursor reads strings, numbers and words as JSON does, and tells what it cannot read', () => {
  const string = (text: string): boolean => new JsonCursor(Buffer.from(text)).string()
  assert.equal(string('"plain"'), true)
  assert.equal(string('"esc \\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9"'), true)
  assert.equal(string('"bad \\x"'), false)
  assert.equal(string('"bad \\u00g0"'), false)
  assert.equal(string('"raw \u0001 control"'), false)
  assert.equal(string('"unterminated'), false)
  assert.equal(string(`"${'x'.repeat(300)}\u0001"`), true, 'a long string is only found, as parseKeepingRaw keeps it')
  const number = (text: string): number => {
    const cursor = new JsonCursor(Buffer.from(text))
    return cursor.number() ? cursor.at : -1
  }
  assert.equal(number('0'), 1)
  assert.equal(number('-12.5e+3,'), 8)
  assert.equal(number('01'), 1, 'a leading zero ends the number')
  assert.equal(number('1.'), -1)
  assert.equal(number('-'), -1)
  assert.equal(number('1e'), -1)
  const literal = (text: string): number | undefined => new JsonCursor(Buffer.from(text)).literal()
  assert.deepEqual(['true', 'false', 'null', 'nul', 'tru'].map(literal), [1, 0, -1, undefined, undefined])
  const cursor = new JsonCursor(Buffer.from(' { "role" : "user" } '))
  assert.equal(cursor.take(0x7b), true)
  assert.equal(cursor.key([Buffer.from('content'), Buffer.from('role')]), 1)
  assert.equal(cursor.oneOf([Buffer.from('user')]), 0)
  assert.equal(cursor.take(0x7d), true)
  assert.equal(cursor.atEnd(), true)
})
