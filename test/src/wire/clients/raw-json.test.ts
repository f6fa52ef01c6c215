import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chatToResponses } from '../../../../src/wire/clients/chat-request.js'
import { messagesToResponses } from '../../../../src/wire/clients/messages-request.js'
import { isText, joinText, jsonBytes, jsonChunks, parseKeepingRaw, RawJson, RawString, stringValue } from '../../../../src/wire/clients/raw-json.js'

const long = (label: string): string => `${label} ${'x'.repeat(400)}`

/** A body as clients write it: long strings with escapes, non-ASCII text, numbers, nesting. */
function sample (): Record<string, unknown> {
  return {
    model: 'gpt-5-codex',
    messages: [
      { role: 'system', content: long('Rules:\n\t"quoted" \\ back\u0001slash é 漢字 😀') },
      { role: 'user', content: [{ type: 'text', text: long('part one') }, { type: 'text', text: 'short é' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'shell', arguments: JSON.stringify({ command: long('cat') }) } }] },
      { role: 'tool', tool_call_id: 'call_1', content: long('output\u2028line') }
    ],
    tools: [{ type: 'function', function: { name: 'shell', description: long('Runs'), parameters: { type: 'object', properties: { n: { type: 'number', minimum: -1.5e3 } }, [long('a long key')]: true } } }],
    stream: true,
    stop: ['END'],
    reasoning_effort: 'high'
  }
}

test('a body parsed keeping its long strings raw translates to the same bytes as JSON.parse and JSON.stringify make', () => {
  const bytes = Buffer.from(JSON.stringify(sample()))
  const kept = jsonBytes(chatToResponses(parseKeepingRaw(bytes), []).body).toString('utf8')
  const plain = jsonBytes(chatToResponses(JSON.parse(bytes.toString('utf8')), []).body).toString('utf8')
  assert.equal(kept, plain)
  assert.deepEqual(JSON.parse(kept).input[0].content, [{ type: 'input_text', text: long('part one') }, { type: 'input_text', text: 'short é' }])
})

test('long strings stay raw, short ones and keys are plain; reading a raw one decodes it', () => {
  const parsed = parseKeepingRaw(Buffer.from(JSON.stringify(sample()))) as any
  const system = parsed.messages[0].content
  assert.ok(system instanceof RawString)
  assert.equal(system.value, long('Rules:\n\t"quoted" \\ back\u0001slash é 漢字 😀'))
  assert.equal(JSON.stringify({ system }), JSON.stringify({ system: system.value }))
  assert.equal(parsed.messages[1].content[1].text, 'short é')
  // The tool list is kept as the client's bytes (translated once per list), and in it each schema too.
  assert.ok(parsed.tools instanceof RawJson)
  const parameters = (parseKeepingRaw(parsed.tools.bytes) as any)[0].function.parameters
  assert.ok(parameters instanceof RawJson)
  assert.ok(Object.keys(parameters.value as object).includes(long('a long key')))
  assert.equal((parameters.value as any).properties.n.minimum, -1500)
})

test('whatever the parser cannot keep raw reads as JSON.parse reads it, errors included', () => {
  for (const text of ['{"a": 1,}', '{"a": "b" "c"}', `{"a": "${'y'.repeat(300)}`, '[1, 2', 'nul', '']) {
    let expected = ''
    try { JSON.parse(text) } catch (err) { expected = (err as Error).message }
    assert.throws(() => parseKeepingRaw(Buffer.from(text)), { message: expected })
  }
  // A client string that looks like a mark: read plainly, never replaced.
  const marked = { a: '\u00000', b: long('raw') }
  assert.deepEqual(parseKeepingRaw(Buffer.from(JSON.stringify(marked))), marked)
  // `__proto__` stays an own property, as JSON.parse makes it.
  const proto = parseKeepingRaw(Buffer.from(`{"__proto__": {"polluted": "${'p'.repeat(300)}"}}`)) as Record<string, unknown>
  assert.equal(Object.getPrototypeOf(proto), Object.prototype)
  assert.ok(Object.hasOwn(proto, '__proto__'))
  assert.equal(({} as Record<string, unknown>).polluted, undefined)
})

test('jsonBytes writes what JSON.stringify writes, marks and all', () => {
  const raw = parseKeepingRaw(Buffer.from(JSON.stringify({ t: long('tail'), schema: { type: 'object', enum: ['}', '{"'] } }))) as { t: RawString, schema: RawJson }
  assert.ok(raw.schema instanceof RawJson)
  const value = { a: [1, null, undefined, 'é'], b: undefined, raw: raw.t, schema: raw.schema, joined: joinText(['head\n', raw.t, '"end"'], '|'), mark: '\u0000raw' }
  assert.equal(jsonBytes(value).toString('utf8'), JSON.stringify(value))
  const unmarked = { ...value, mark: 'no' }
  assert.equal(jsonBytes(unmarked).toString('utf8'), JSON.stringify(unmarked))
  assert.equal(jsonBytes({ plain: 'x' }).toString('utf8'), '{"plain":"x"}')
})

test('jsonChunks: the same text as jsonBytes, with raw values sent as views of the client\'s body, uncopied, and the text between them as text', () => {
  const prompt = `system ${'p'.repeat(3000)}`
  const output = `out "quoted" ${'o'.repeat(5000)}`
  const client = Buffer.from(JSON.stringify({ instructions: prompt, note: long('short raw é'), output, n: 1 }))
  const raw = parseKeepingRaw(client) as Record<string, RawString>
  const value = { model: 'm é', instructions: raw.instructions, input: [{ note: raw.note, output: raw.output }], joined: joinText([raw.instructions, 'tail']) }
  const chunks = jsonChunks(value)
  const joined = Buffer.concat(chunks.map((chunk) => typeof chunk === 'string' ? Buffer.from(chunk) : chunk))
  assert.equal(joined.toString('utf8'), JSON.stringify(value))
  assert.ok(joined.equals(jsonBytes(value)))
  const bytes = chunks.filter((chunk) => typeof chunk !== 'string')
  const isView = (chunk: Buffer): boolean => chunk.buffer === client.buffer && chunk.byteOffset >= client.byteOffset && chunk.byteOffset < client.byteOffset + client.length
  assert.ok(bytes.every(isView), 'every raw value is the client\'s own bytes')
  // The prompt twice (itself and in the joined text), the note and the output.
  assert.deepEqual(bytes.map((chunk) => chunk.length), [3007, Buffer.byteLength(JSON.stringify(long('short raw é'))) - 2, Buffer.byteLength(JSON.stringify(output)) - 2, 3007])
  assert.ok(chunks.filter((chunk) => typeof chunk === 'string').join('').includes('"model":"m é"'), 'the structure is text')
  assert.deepEqual(jsonChunks({ plain: 'x' }), ['{"plain":"x"}'])
})

test('a plain object is written member by member as JSON.stringify writes it, its text in as few chunks as its raw values allow', () => {
  const client = Buffer.from(JSON.stringify({ a: long('first é'), b: long('second') }))
  const raw = parseKeepingRaw(client) as Record<string, RawString>
  const proto = JSON.parse('{"__proto__":{"x":1},"ok":true}') as Record<string, unknown>
  class Point { constructor (readonly x: number) {} }
  const values: unknown[] = [
    {},
    { left: undefined, fn: () => 1, sym: Symbol('s'), kept: 0 },
    { only: undefined },
    { when: new Date(0), own: { toJSON: () => 'custom' }, gone: { toJSON: () => undefined }, n: null },
    { 'odd "key"\n': 1, 'é': 2, 3: 'three', __proto__x: raw.a },
    proto,
    { first: raw.a, second: raw.b, joined: joinText([raw.a, 'tail', raw.b]), nested: { deep: [raw.b, { x: raw.a }] }, point: new Point(2) },
    { mark: '\u0000raw', raw: raw.a },
    { toJSON: () => ({ replaced: true }) },
    new Point(1),
    [raw.a, { b: raw.b }]
  ]
  for (const value of values) {
    const chunks = jsonChunks(value)
    const joined = Buffer.concat(chunks.map((chunk) => typeof chunk === 'string' ? Buffer.from(chunk) : chunk))
    assert.equal(joined.toString('utf8'), JSON.stringify(value))
    chunks.forEach((chunk, i) => { assert.ok(i === 0 || typeof chunk !== 'string' || typeof chunks[i - 1] !== 'string', 'text next to text is one chunk') })
  }
})

test('text helpers: raw or plain, read or moved', () => {
  const raw = new RawString([Buffer.from('a\\nb')])
  assert.ok(isText(raw) && isText('x') && !isText(1))
  assert.equal(stringValue(raw), 'a\nb')
  assert.equal(joinText(['a', 'b'], '-'), 'a-b')
  assert.equal((joinText(['x', raw], '\n') as RawString).value, 'x\na\nb')
})

test('an Anthropic body with long blocks, images and tool results translates the same way kept raw', () => {
  const body = {
    model: 'claude-sonnet-4-5',
    max_tokens: 100,
    system: [{ type: 'text', text: long('system one') }, { type: 'text', text: 'two' }],
    messages: [
      { role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR'.repeat(100) } }, { type: 'text', text: long('look') }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'tu_1', name: 'read', input: { path: long('/tmp') } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'tu_1', is_error: true, content: [{ type: 'text', text: long('denied') }, { type: 'text', text: 'again' }] }] }
    ],
    stop_sequences: ['STOP']
  }
  const bytes = Buffer.from(JSON.stringify(body))
  const aliases: never[] = []
  assert.equal(jsonBytes(messagesToResponses(parseKeepingRaw(bytes), aliases).body).toString('utf8'), jsonBytes(messagesToResponses(JSON.parse(bytes.toString('utf8')), aliases).body).toString('utf8'))
})

test('quotes are found wherever they fall, escaped or not, near or far from the last one', () => {
  // Strings of every length around the byte-by-byte search's reach, with escaped quotes and
  // backslashes placed across it, inside and outside a schema kept raw.
  for (let length = 30; length <= 70; length++) {
    for (const at of [0, 20, 40, 47, 48, 49, 60]) {
      const text = 'a'.repeat(length).split('')
      if (at < length) text[at] = '"'
      if (at + 1 < length) text[at + 1] = '\\'
      const value = text.join('')
      const body = { model: 'm', messages: [{ role: 'user', content: value }, { role: 'user', content: value.repeat(10) }], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', description: value } } }] }
      const bytes = Buffer.from(JSON.stringify(body))
      const parsed = parseKeepingRaw(bytes) as { messages: Array<{ content: unknown }> }
      assert.ok(parsed.messages[1]!.content instanceof RawString, `read without falling back to JSON.parse: length ${length}, escape at ${at}`)
      assert.deepEqual(plain(parsed), body, `length ${length}, escape at ${at}`)
      assert.equal(jsonBytes(parsed).toString('utf8'), bytes.toString('utf8'))
    }
  }
})

/** A parsed body with its raw values read: what JSON.parse makes of the same bytes. */
function plain (value: unknown): unknown {
  if (value instanceof RawString || value instanceof RawJson) return value.value
  if (Array.isArray(value)) return value.map(plain)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, member]) => [key, plain(member)]))
  return value
}
