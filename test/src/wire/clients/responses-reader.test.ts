import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { AnswerCollector } from '../../../../src/wire/clients/answer.js'
import { ResponsesReader } from '../../../../src/wire/clients/responses-reader.js'
import { readBackendEvents } from '../../../../src/wire/backend-events.js'

/** What the reader makes of one event's data, sent under `name` and followed by a completed end. */
function read (name: string, data: string): AnswerCollector {
  const collector = new AnswerCollector()
  const reader = new ResponsesReader(collector)
  reader.push(`event: ${name}\ndata: ${data}\n\nevent: response.completed\ndata: {"type":"response.completed","response":{}}\n\n`)
  reader.end()
  return collector
}

// Deltas and the start are cut out of the event's text rather than parsed: each case is checked
// against what JSON.parse reads from the same text, including those where the cut must give way.
const TEXT = 'response.output_text.delta'
const REASONING = 'response.reasoning_summary_text.delta'
const deltas = [
  '{"type":"T","item_id":"msg_1","output_index":0,"content_index":0,"delta":"plain words"}',
  '{"type":"T","delta":"quotes \\" and \\\\ backslashes \\\\\\" mixed, a newline \\n, \\u00e9 and \\ud83d\\ude00"}',
  '{"type":"T","delta":"ends in a backslash \\\\"}',
  '{"type":"T","delta":"\\\\\\\\"}',
  '{"type":"T","delta":"text that says \\"delta\\":\\"not this\\" inside"}',
  '{"type":"T","delta":"unicode é 漢字 as it comes"}',
  '{"type":"T","delta":""}',
  '{"type":"T","logprobs":[{"delta":"a nested one"}],"delta":"the event\'s own"}',
  '{"type":"T","meta":{"delta":"a nested one"},"delta":"the event\'s own"}',
  '{"output_index":0,"type":"T","delta":"type not first"}',
  '{"type": "T", "delta": "with spaces"}',
  '{"type":"T","delta":"then more","logprobs":[],"obfuscation":"abc"}'
]

test('text and reasoning deltas read as JSON.parse reads them, in every shape', () => {
  for (const name of [TEXT, REASONING]) {
    for (const template of deltas) {
      const data = template.replace('"T"', JSON.stringify(name))
      const expected = (JSON.parse(data) as { delta: string }).delta
      const answer = read(name, data).answer
      assert.equal(name === TEXT ? answer.text : answer.reasoning, expected, data)
      assert.equal(name === TEXT ? answer.reasoning : answer.text, '', data)
      assert.equal(answer.finish, 'stop')
    }
  }
})

test('a delta that is not a string, or an event that is not JSON, adds nothing', () => {
  for (const data of ['{"type":"response.output_text.delta","delta":null}', '{"type":"response.output_text.delta","delta":12}', '{"type":"response.output_text.delta","delta":"cut']) {
    assert.equal(read(TEXT, data).answer.text, '', data)
  }
})

test('the answer\'s id and time read from response.created as JSON.parse reads them', () => {
  const cases = [
    '{"type":"response.created","response":{"id":"resp_1","object":"response","created_at":1700000000,"status":"in_progress","model":"gpt-5-codex","output":[]}}',
    '{"type":"response.created","sequence_number":0,"response":{"id":"resp_2","object":"response","created_at":1700000001,"instructions":"lists [like this] and {braces}","tools":[{"type":"function","id":"no"}]}}',
    '{"type":"response.created","response":{"metadata":{"id":"resp_nested"},"id":"resp_3","created_at":1700000002}}',
    '{"type":"response.created","response":{"tools":[{"id":"resp_in_a_list"}],"id":"resp_4","created_at":1700000003}}',
    '{"type":"response.created","response":{"id":"resp_\\u0035","created_at":1700000004}}',
    '{"type":"response.created","response":{"created_at":1700000005,"id":"resp_6"}}',
    '{"type":"response.created","response":{"id":"resp_7","created_at":  1700000006 }}',
    '{"type":"response.created","meta":{"response":{"id":"resp_fake","created_at":1}},"response":{"id":"resp_8","created_at":1700000007}}'
  ]
  for (const data of cases) {
    const response = (JSON.parse(data) as { response: { id: string, created_at: number } }).response
    const answer = read('response.created', data).answer
    assert.deepEqual({ id: answer.id, created: answer.created }, { id: response.id, created: response.created_at }, data)
  }
})

test('a character whose bytes are split between two chunks reaches the client whole', () => {
  const text = 'é 漢字 😀 — done'
  const bytes = Buffer.from(`event: ${TEXT}\ndata: ${JSON.stringify({ type: TEXT, delta: text })}\n\nevent: response.completed\ndata: {"type":"response.completed","response":{}}\n\n`)
  const first = bytes.indexOf(Buffer.from('é'))
  for (let cut = first; cut < first + Buffer.byteLength(text); cut++) {
    const collector = new AnswerCollector()
    const reader = new ResponsesReader(collector)
    reader.push(bytes.subarray(0, cut))
    reader.push(bytes.subarray(cut))
    reader.end()
    assert.equal(collector.answer.text, text, `cut at ${cut}`)
  }
})

test('the answer\'s id, kept while it streams, holds no response.created alive: a real one carries the request\'s instructions and tools', () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const kept: AnswerCollector[] = []
  gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < 100; i++) {
    const collector = new AnswerCollector()
    const created = { type: 'response.created', response: { id: `resp_${String(i).padStart(40, '0')}`, created_at: 1700000000, instructions: `${i} ${'You are Codex, a coding agent. '.repeat(6_000)}` } }
    new ResponsesReader(collector).push(`event: response.created\ndata: ${JSON.stringify(created)}\n\n`)
    kept.push(collector)
  }
  gc()
  const grown = process.memoryUsage().heapUsed - before
  assert.equal(kept[99]!.answer.id, `resp_${'99'.padStart(40, '0')}`)
  // 100 events of 180 KB: kept alive by their ids, they would be 18 MB.
  assert.ok(grown < 5 * 1024 * 1024, `the kept answers hold ${(grown / 1048576).toFixed(1)} MB`)
})

test('an event is dispatched by its name: one without a name is read by its type, one a client does not hear of is skipped', () => {
  const collector = new AnswerCollector()
  const reader = new ResponsesReader(collector)
  reader.push('data: {"type":"response.output_text.delta","delta":"nameless "}\n\n')
  reader.push('event: response.output_text.done\ndata: {"type":"response.output_text.delta","delta":"not heard"}\n\n')
  reader.push('event: response.output_item.done\ndata: {"type":"response.output_item.done","output_index":0,"item":{"type":"message","id":"msg_1"}}\n\n')
  reader.push('event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"named"}\n\n')
  reader.push('data: {"type":"response.completed","response":{}}\n\n')
  reader.end()
  assert.equal(collector.answer.text, 'nameless named')
  assert.equal(collector.answer.finish, 'stop')
  assert.equal(collector.answer.failure, null)
})

test('the pool hears from the reader: a completed answer\'s usage, a failed one\'s error, and nothing from an answer cut short', () => {
  const heard = (text: string): { usage: unknown[], failure: unknown[] } => {
    const news = { usage: [] as unknown[], failure: [] as unknown[] }
    const reader = new ResponsesReader(new AnswerCollector(), { usage: (usage) => { news.usage.push(usage) }, failure: (error) => { news.failure.push(error) } })
    reader.push(text)
    reader.end()
    return news
  }
  const completed = heard('event: response.completed\ndata: {"type":"response.completed","response":{"model":"gpt-5-codex","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":3}}}}\n\n')
  assert.deepEqual(completed, { usage: [{ model: 'gpt-5-codex', input: 12, cachedInput: 4, output: 7, reasoning: 3 }], failure: [] })
  const error = { code: 'usage_limit_reached', message: 'The usage limit has been reached', resets_at: 1_900_000_000 }
  const failed = heard(`event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"partial"}\n\nevent: response.failed\ndata: ${JSON.stringify({ type: 'response.failed', response: { error } })}\n\n`)
  assert.deepEqual(failed, { usage: [], failure: [error] })
  assert.deepEqual(heard('event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"cut"}\n\n'), { usage: [], failure: [] })
})

/** Every call a sink gets, and the news the pool gets, in order. */
function transcript (feed: (reader: ResponsesReader) => void): unknown[] {
  const calls: unknown[] = []
  const record = (name: string) => (...args: unknown[]): void => { calls.push([name, ...args.map((arg) => JSON.parse(JSON.stringify(arg ?? null)) as unknown)]) }
  const sink = { start: record('start'), text: record('text'), reasoning: record('reasoning'), toolCallStart: record('toolCallStart'), toolCallArguments: record('toolCallArguments'), toolCallEnd: record('toolCallEnd'), finish: record('finish'), fail: record('fail') }
  const reader = new ResponsesReader(sink, { usage: record('usage'), failure: record('failure') })
  feed(reader)
  reader.end()
  return calls
}

test('a big chunk read event by event in place tells the sink and the pool what the parser\'s reading tells them, whatever the stream\'s shape and cuts', () => {
  const sse = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data as object })}\n\n`
  const echoed = { instructions: `You are Codex, ünïcode and "quotes". ${'instructions '.repeat(1300)}`, tools: [{ type: 'function', name: 'shell', description: 'run {it}'.repeat(200) }] }
  const usage = { input_tokens: 9000, input_tokens_details: { cached_tokens: 8000 }, output_tokens: 42, output_tokens_details: { reasoning_tokens: 7 }, total_tokens: 9042 }
  const call = { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'shell', arguments: '' }
  const events = [
    sse('response.created', { sequence_number: 0, response: { id: 'resp_big', object: 'response', created_at: 1_760_000_000, status: 'in_progress', model: 'gpt-5-codex', ...echoed, output: [] } }),
    sse('response.output_item.added', { output_index: 0, item: { type: 'reasoning', id: 'rs_1', encrypted_content: 'gAAAA'.repeat(400) } }),
    sse('response.reasoning_summary_text.delta', { delta: 'thinking é' }),
    sse('response.output_item.added', { output_index: 1, item: { type: 'message', id: 'msg_1', content: [] } }),
    sse('response.output_text.delta', { output_index: 1, delta: 'Hello, 漢字 "world"\n' }),
    sse('response.output_text.delta', { output_index: 1, delta: '' }),
    sse('response.output_text.done', { output_index: 1, text: 'Hello' }),
    sse('response.output_item.added', { output_index: 2, item: call }),
    sse('response.function_call_arguments.delta', { output_index: 2, delta: '{"command":' }),
    sse('response.output_item.done', { output_index: 2, item: { ...call, arguments: '{"command":["ls"]}' } })
  ]
  const ends = [
    sse('response.completed', { response: { id: 'resp_big', model: 'gpt-5.1-codex', ...echoed, output: [{ type: 'message', content: [{ type: 'output_text', text: 'a "usage":{"input_tokens":1} in text' }] }], usage } }),
    sse('response.completed', { response: { id: 'resp_big', model: 'm\\"odd', usage } }),
    sse('response.completed', { response: { id: 'resp_big', ...echoed, usage: null } }),
    sse('response.incomplete', { response: { incomplete_details: { reason: 'max_output_tokens' }, usage } }),
    sse('response.failed', { response: { error: { code: 'server_is_overloaded', message: 'busy' } } }),
    ''
  ]
  // The backend's shape, and shapes only the parser reads: CRLF, no names, comments and ids, data over two lines.
  const shapes: Array<(text: string) => string> = [
    (text) => text,
    (text) => text.replaceAll('\n', '\r\n'),
    (text) => text.replaceAll(/event: [^\n]*\n/g, ''),
    (text) => text.replaceAll('event: response.output_text.delta\n', ': keep-alive\nid: 7\nevent: response.output_text.delta\n'),
    (text) => text.replace('"delta":"Hello', '"delta":\ndata: "Hello')
  ]
  for (const end of ends) {
    for (const shape of shapes) {
      const text = shape(events.join('') + end)
      const bytes = Buffer.from(text)
      assert.ok(bytes.length > 16 * 1024, 'big enough to be read in place')
      // The backend's shape is read in place to its end; each other one from where it departs from it.
      const inPlaceTo = readBackendEvents(bytes, () => true)
      assert.ok(shape === shapes[0] ? inPlaceTo === bytes.length : inPlaceTo < bytes.length)
      const parsed = transcript((reader) => { reader.push(text) })
      assert.ok(parsed.length > 5, 'the stream says something')
      assert.deepEqual(transcript((reader) => { reader.push(bytes) }), parsed, `whole: ${JSON.stringify(end.slice(0, 40))}`)
      // Cut into pieces of every size class: small ones parsed, big ones read in place, events cut across them.
      for (const size of [7, 1000, 4096, 9000, 20_000]) {
        assert.deepEqual(transcript((reader) => { for (let at = 0; at < bytes.length; at += size) reader.push(bytes.subarray(at, at + size)) }), parsed, `pieces of ${size}: ${JSON.stringify(end.slice(0, 40))}`)
      }
    }
  }
})
