import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chatToResponses } from '../../../../src/wire/clients/chat-request.js'
import { messagesToResponses } from '../../../../src/wire/clients/messages-request.js'
import { jsonBytes, parseKeepingRaw, RawJson } from '../../../../src/wire/clients/raw-json.js'
import { RefusedInput } from '../../../../src/wire/clients/responses-request.js'
import { keptListEnd } from '../../../../src/wire/clients/tool-lists.js'

const chatTool = (name: string): Record<string, unknown> => ({ type: 'function', function: { name, description: `${name}: ${'d'.repeat(300)}`, parameters: { type: 'object', properties: { path: { type: 'string' } } } } })
const chatBody = (tools: unknown[]): Buffer => Buffer.from(JSON.stringify({ model: 'gpt-5', messages: [{ role: 'user', content: 'hi' }], tools }))

test('a tool list seen before is taken as translated then, and it is what translating it again gives', () => {
  const body = chatBody([chatTool('read_file'), chatTool('write_file')])
  const first = chatToResponses(parseKeepingRaw(body), []).body.tools
  const again = chatToResponses(parseKeepingRaw(Buffer.from(body)), []).body.tools
  assert.ok(first instanceof RawJson)
  assert.equal(again, first, 'the kept translation, not a new one')
  const plain = chatToResponses(JSON.parse(body.toString('utf8')), []).body.tools
  assert.deepEqual(first.value, JSON.parse(jsonBytes(plain).toString('utf8')))
  // Another list of the same length in bytes is another list.
  const other = chatBody([chatTool('read_fila'), chatTool('write_file')])
  assert.equal(other.length, body.length)
  assert.equal(((chatToResponses(parseKeepingRaw(other), []).body.tools as RawJson).value as Array<{ name: string }>)[0]!.name, 'read_fila')
})

test('the same bytes are translated for each client API on its own, and a refused list is refused every time', () => {
  const tools = [{ name: 'lookup', description: 'finds things', input_schema: { type: 'object', properties: {} } }]
  const messages = Buffer.from(JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], tools }))
  const translated = messagesToResponses(parseKeepingRaw(messages), []).body.tools as RawJson
  assert.deepEqual(translated.value, [{ type: 'function', name: 'lookup', parameters: { type: 'object', properties: {} }, description: 'finds things', strict: false }])
  // Chat Completions does not take Anthropic's tool shape: the Messages translation is not handed out.
  for (let i = 0; i < 2; i++) assert.throws(() => chatToResponses(parseKeepingRaw(chatBody(tools)), []), RefusedInput)
})

test('a kept list is found in a later body without a scan for its end; a list that only begins like it is scanned', () => {
  const tools = [chatTool('grep'), chatTool('glob')]
  const body = chatBody(tools)
  chatToResponses(parseKeepingRaw(body), [])
  const open = body.indexOf('"tools":[') + 8
  assert.equal(keptListEnd(body, open), body.length - 1, 'the list ends where the body\'s last brace begins')
  const longer = chatBody([...tools, chatTool('edit')])
  assert.equal(keptListEnd(longer, open), -1)
  for (const next of [body, longer, Buffer.from(body.toString('utf8').replace('"tools":[', '"tools": ['))]) {
    const kept = chatToResponses(parseKeepingRaw(next, keptListEnd), []).body.tools as RawJson
    const plain = chatToResponses(JSON.parse(next.toString('utf8')), []).body.tools
    assert.deepEqual(kept.value, JSON.parse(jsonBytes(plain).toString('utf8')))
  }
})
