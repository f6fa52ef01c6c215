import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { MarkedEventWatch, type WatchedEvent } from '../../../src/wire/marked-event-watch.js'
import { completedUsage, completedUsageInBytes, watchedUsage, type CompletedUsage } from '../../../src/wire/usage-watch.js'
import { watchedFailure } from '../../../src/wire/stream-failure.js'

const usageWatch = (onUsage: (usage: CompletedUsage) => void): MarkedEventWatch => new MarkedEventWatch([watchedUsage(onUsage)])
const failureWatch = (onFailure: (error: Record<string, unknown>) => void): MarkedEventWatch => new MarkedEventWatch([watchedFailure(onFailure)])

const usage = { input_tokens: 120, input_tokens_details: { cached_tokens: 100 }, output_tokens: 30, output_tokens_details: { reasoning_tokens: 8 }, total_tokens: 150 }
const stream = [
  'event: response.created\ndata: {"type":"response.created","response":{"usage":null}}\n\n',
  'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"response.completed is just text here"}\n\n',
  `event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { model: 'gpt-5-codex', usage } })}\n\n`
].join('')

test('the usage of response.completed is found wherever the chunks are cut', () => {
  const bytes = Buffer.from(stream)
  for (let cut = 1; cut < bytes.length; cut += 7) {
    const seen: unknown[] = []
    const watch = usageWatch((found) => seen.push(found))
    watch.push(bytes.subarray(0, cut))
    watch.push(bytes.subarray(cut))
    assert.deepEqual(seen, [{ model: 'gpt-5-codex', input: 120, cachedInput: 100, output: 30, reasoning: 8 }], `cut at ${cut}`)
  }
})

test('a stream without response.completed reports nothing, and the failure watch still sees response.failed', () => {
  const seen: unknown[] = []
  usageWatch((found) => seen.push(found)).push(Buffer.from(stream.split('event: response.completed')[0]!))
  assert.deepEqual(seen, [])
  const failures: unknown[] = []
  failureWatch((error) => failures.push(error)).push(Buffer.from('event: response.failed\ndata: {"type":"response.failed","response":{"error":{"code":"server_is_overloaded"}}}\n\n'))
  assert.deepEqual(failures, [{ code: 'server_is_overloaded' }])
})

test('the usage is cut out of the event when the response is written in the backend key order, and read whole otherwise', () => {
  const counts = { input_tokens: 7, input_tokens_details: { cached_tokens: 2 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 1 }, total_tokens: 12 }
  const expected = { model: 'gpt-5-codex', input: 7, cachedInput: 2, output: 5, reasoning: 1 }
  // Output text and tool schemas that speak of "usage" and "model" before the response's own.
  const response = {
    id: 'resp_1',
    model: 'gpt-5-codex',
    output: [{ type: 'message', content: [{ type: 'output_text', text: 'a "usage":{"input_tokens":999} and "model":"fake" in text {' }] }],
    tools: [{ type: 'function', name: 'meter', parameters: { type: 'object', properties: { usage: { type: 'object', properties: { input_tokens: { type: 'number' } } } } } }],
    usage: counts,
    metadata: { note: '}' }
  }
  const data = JSON.stringify({ type: 'response.completed', sequence_number: 9, response })
  assert.deepEqual(completedUsage('response.completed', data), expected)
  assert.deepEqual(completedUsage(undefined, data), expected, 'named only by its type')
  // The usage before the tools: the last "usage" is a schema, so the event is read whole.
  const reordered = JSON.stringify({ type: 'response.completed', response: { model: 'gpt-5-codex', usage: counts, tools: response.tools } })
  assert.deepEqual(completedUsage('response.completed', reordered), expected)
  // Metadata named usage after the counts: a string, not counts, so the event is read whole.
  const metadata = JSON.stringify({ type: 'response.completed', response: { model: 'gpt-5-codex', usage: counts, metadata: { usage: 'team-a' } } })
  assert.deepEqual(completedUsage('response.completed', metadata), expected)
  // A model written with escapes is decoded.
  const escaped = data.replace('"model":"gpt-5-codex"', '"model":"gpt-5\\u002dcodex"')
  assert.deepEqual(completedUsage('response.completed', escaped), expected)
})

test('the usage cut from the event\'s bytes is the one cut from its text, and odd events are left to the text', () => {
  const counts = { input_tokens: 7, input_tokens_details: { cached_tokens: 2 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 1 }, total_tokens: 12 }
  const tricky = { type: 'message', content: [{ type: 'output_text', text: 'ünïcode, a "usage":{"input_tokens":999}, "model":"fake" and a { in text' }] }
  const responses: Array<Record<string, unknown>> = [
    { model: 'gpt-5-codex', output: [tricky], tools: [{ type: 'function', name: 'meter', parameters: { properties: { usage: { type: 'object' } } } }], usage: counts },
    { model: 'modèle-ü', usage: counts },
    { model: 'escaped', usage: counts },
    { model: '', usage: counts },
    { usage: { input_tokens: 3, output_tokens: 4 } },
    { model: 'm', usage: counts, metadata: { usage: 'team-a' } },
    { model: 'm', usage: { input_tokens: -1, output_tokens: 4 } },
    { model: 'm', usage: null },
    { model: 'm', usage: { input_tokens: 3.5, output_tokens: 4 } }
  ]
  let fromBytes = 0
  for (const response of responses) {
    const data = JSON.stringify({ type: 'response.completed', sequence_number: 3, response }).replace('"escaped"', '"gpt-5\\u002dcodex"')
    const event = Buffer.from(`event: response.created\ndata: {"type":"response.created"}\n\nevent: response.completed\ndata: ${data}\n\n`)
    const seen: unknown[] = []
    usageWatch((found) => seen.push(found)).push(event)
    const expected = completedUsage('response.completed', data)
    assert.deepEqual(seen, expected === null ? [] : [expected], data)
    const start = event.indexOf(data.slice(0, 20))
    const cut = completedUsageInBytes(event, start, start + Buffer.byteLength(data))
    if (cut !== undefined) {
      fromBytes++
      assert.deepEqual(cut, expected, data)
    }
  }
  // The backend's order, a non-ASCII name, an empty one, none: cut from the bytes; an escaped name, metadata named usage after the counts, odd counts: read as text.
  assert.equal(fromBytes, 4)
  const escaped = Buffer.from('{"type":"response.completed","response":{"model":"a\\"b","usage":{"input_tokens":1,"output_tokens":1}}}')
  assert.equal(completedUsageInBytes(escaped, 0, escaped.length), undefined)
  assert.equal(completedUsage('response.completed', escaped.toString())?.model, 'a"b')
})

test('an event that is not response.completed, or carries no usage, gives none', () => {
  const counts = { input_tokens: 7, output_tokens: 5 }
  assert.equal(completedUsage('response.created', JSON.stringify({ type: 'response.created', response: { usage: counts } })), null)
  assert.equal(completedUsage(undefined, JSON.stringify({ type: 'response.output_text.delta', delta: '{"type":"response.completed","response":{"usage":{"input_tokens":1}}}' })), null)
  assert.equal(completedUsage('response.completed', JSON.stringify({ type: 'response.completed', response: { usage: null } })), null)
  assert.equal(completedUsage('response.completed', 'not json'), null)
})

test('a CRLF stream and a delta that names response.completed: only the real event counts', () => {
  const events = [
    'event: response.output_text.delta\r\ndata: {"type":"response.output_text.delta","delta":"event: response.completed"}\r\n\r\n',
    `event: response.completed\r\ndata: ${JSON.stringify({ type: 'response.completed', response: { model: 'm', usage: { input_tokens: 3, output_tokens: 4 } } })}\r\n\r\n`
  ].join('')
  const seen: unknown[] = []
  usageWatch((found) => seen.push(found)).push(Buffer.from(events))
  assert.deepEqual(seen, [{ model: 'm', input: 3, cachedInput: 0, output: 4, reasoning: 0 }])
})

test('odd but valid SSE is read the same whole or cut: no space after the colon, data over several lines, comments, CRLF', () => {
  const json = JSON.stringify({ type: 'response.completed', response: { model: 'm', usage: { input_tokens: 11, output_tokens: 2 } } })
  const half = json.indexOf('"response":{')
  const forms = [
    `event:response.completed\ndata:${json}\n\n`,
    `: a comment\nevent: response.completed\ndata: ${json.slice(0, half)}\ndata: ${json.slice(half)}\n\n`,
    `data: ${json}\r\n\r\n`,
    `id: 7\r\nevent: response.completed\r\nretry: 10\r\ndata: ${json}\r\n\r\n`
  ]
  for (const form of forms) {
    const bytes = Buffer.from(`event: response.created\ndata: {"type":"response.created"}\n\n${form}`)
    for (const cut of [bytes.length, bytes.length - 3, 40]) {
      const seen: unknown[] = []
      const watch = usageWatch((found) => seen.push(found))
      watch.push(bytes.subarray(0, cut))
      watch.push(bytes.subarray(cut))
      assert.deepEqual(seen, [{ model: 'm', input: 11, cachedInput: 0, output: 2, reasoning: 0 }], `${JSON.stringify(form.slice(0, 30))} cut at ${cut}`)
    }
  }
})

test('a model name whose character two chunks share is read whole', () => {
  const bytes = Buffer.from(`event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { model: 'modèle-ü', usage } })}\n\n`)
  const at = bytes.indexOf(Buffer.from('è'))
  for (const cut of [at + 1, bytes.indexOf(Buffer.from('ü')) + 1]) {
    const seen: Array<{ model: string | null }> = []
    const watch = usageWatch((found) => seen.push(found))
    watch.push(bytes.subarray(0, cut))
    watch.push(bytes.subarray(cut))
    assert.equal(seen[0]?.model, 'modèle-ü', `cut at ${cut}`)
  }
})

test('the model name kept with the counts holds no event alive: a real response.completed is tens of kilobytes', () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  // Names of 13 characters or more are the ones V8 would keep as a view into the text they were cut from.
  const model = 'gpt-5.1-codex-max'
  const kept: unknown[] = []
  gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < 100; i++) {
    const output = `${i} ${'encrypted reasoning and the whole answer '.repeat(5_000)}`
    const data = JSON.stringify({ type: 'response.completed', response: { id: `resp_${i}`, model, output: [{ type: 'message', text: output }], usage } })
    kept.push(completedUsage('response.completed', data))
  }
  gc()
  const grown = process.memoryUsage().heapUsed - before
  assert.deepEqual(kept[99], { model, input: 120, cachedInput: 100, output: 30, reasoning: 8 })
  // 100 events of 200 KB: kept alive by their model names, they would be 20 MB.
  assert.ok(grown < 5 * 1024 * 1024, `the kept counts hold ${(grown / 1048576).toFixed(1)} MB`)
})

test('events of a real size (instructions and tools echoed, kilobytes each) are told apart by their first bytes, wherever the chunks are cut', () => {
  const instructions = 'You are Codex, a coding agent. Mention response.completed and response.failed freely. '.repeat(60)
  const response = (status: string) => ({ id: 'resp_1', model: 'gpt-5-codex', status, instructions, tools: [{ type: 'function', name: 'shell', description: 'x'.repeat(700) }] })
  const events = (end: string, endData: Record<string, unknown>) => Buffer.from([
    `event: response.created\ndata: ${JSON.stringify({ type: 'response.created', response: response('in_progress') })}\n\n`,
    'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"done"}\n\n',
    `event: ${end}\ndata: ${JSON.stringify({ type: end, ...endData })}\n\n`
  ].join(''))
  const completed = events('response.completed', { response: { ...response('completed'), usage } })
  const failed = events('response.failed', { response: { ...response('failed'), error: { code: 'server_is_overloaded', message: 'try again' } } })
  assert.ok(completed.length > 12_000)
  // Cut every so often, and inside each blank line (a line feed ending one chunk, the next starting the next).
  const firsts: number[] = []
  for (let first = 1; first < completed.length; first += 211) firsts.push(first)
  for (let at = completed.indexOf('\n\n'); at !== -1; at = completed.indexOf('\n\n', at + 1)) firsts.push(at + 1)
  for (const first of firsts) {
    for (const second of [first + 1, first + 300, first + 5_000]) {
      const cuts = [0, first, Math.min(second, completed.length), completed.length]
      // The pool's own watch: both marks in one walk; and a watch for the failure alone.
      const seen: unknown[] = []
      const failures: unknown[] = []
      const both = new MarkedEventWatch([watchedFailure((error) => failures.push(error)), watchedUsage((found) => seen.push(found))])
      const failedSeen: unknown[] = []
      const failedFailures: unknown[] = []
      const failedBoth = new MarkedEventWatch([watchedFailure((error) => failedFailures.push(error)), watchedUsage((found) => failedSeen.push(found))])
      const failedOnly: unknown[] = []
      const failedWatch = failureWatch((error) => failedOnly.push(error))
      for (let i = 0; i + 1 < cuts.length; i++) {
        both.push(completed.subarray(cuts[i], cuts[i + 1]))
        const part = failed.subarray(Math.min(cuts[i]!, failed.length), Math.min(cuts[i + 1]!, failed.length))
        failedBoth.push(part)
        failedWatch.push(part)
      }
      failedBoth.push(failed.subarray(Math.min(cuts[3]!, failed.length)))
      failedWatch.push(failed.subarray(Math.min(cuts[3]!, failed.length)))
      const where = `cut at ${cuts.join(', ')}`
      assert.deepEqual(seen, [{ model: 'gpt-5-codex', input: 120, cachedInput: 100, output: 30, reasoning: 8 }], where)
      assert.deepEqual(failures, [], where)
      assert.deepEqual(failedFailures, [{ code: 'server_is_overloaded', message: 'try again' }], where)
      assert.deepEqual(failedSeen, [], where)
      assert.deepEqual(failedOnly, failedFailures, where)
    }
  }
})

test('a stream in very small chunks (an event\'s name or blank line cut into several) is watched all the same, LF or CRLF', () => {
  const completedText = [
    'event: response.created\ndata: {"type":"response.created","response":{}}\n\n',
    `: keep-alive\n\nid: 3\nevent: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { model: 'gpt-5-codex', usage } })}\n\n`
  ].join('')
  const failedText = 'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"x"}\n\nevent: response.failed\ndata: {"type":"response.failed","response":{"error":{"code":"server_error"}}}\n\n'
  for (const [eol, size] of ['\n', '\r\n'].flatMap((eol) => [1, 2, 3, 5, 7, 13, 50].map((size) => [eol, size] as const))) {
    const bytes = Buffer.from(completedText.replaceAll('\n', eol))
    const failed = Buffer.from(failedText.replaceAll('\n', eol))
    // The pool's own watch, both marks in one walk, over each stream.
    const watchBoth = (stream: Buffer): { seen: unknown[], failures: unknown[] } => {
      const seen: unknown[] = []
      const failures: unknown[] = []
      const watch = new MarkedEventWatch([watchedFailure((error) => failures.push(error)), watchedUsage((found) => seen.push(found))])
      for (let at = 0; at < stream.length; at += size) watch.push(stream.subarray(at, at + size))
      return { seen, failures }
    }
    assert.deepEqual(watchBoth(bytes), { seen: [{ model: 'gpt-5-codex', input: 120, cachedInput: 100, output: 30, reasoning: 8 }], failures: [] }, `chunks of ${size}, ${JSON.stringify(eol)}`)
    const { seen, failures } = watchBoth(failed)
    assert.deepEqual(seen, [], `chunks of ${size}, ${JSON.stringify(eol)}`)
    assert.deepEqual(failures, [{ code: 'server_error' }], `chunks of ${size}, ${JSON.stringify(eol)}`)
  }
})

test('one walk for several marks: an event named by a mark goes to its watcher alone, each until it has what it wanted', () => {
  const offered: string[] = []
  const watcher = (mark: string, wanted: number): WatchedEvent => ({ mark, onEvent: (name, data) => { offered.push(`${mark} ${name ?? '-'} ${JSON.parse(data).n as number}`); return --wanted === 0 } })
  const events = [
    'event: a.done\ndata: {"n":1,"text":"b.done"}\n\n', // named a.done: not offered to b.done, though its text names it
    'event: other\ndata: {"n":2}\n\n',
    'event: a.done\ndata: {"n":3}\n\n', // a.done now has what it wanted
    'data: {"n":4,"type":"b.done"}\n\n', // nameless: offered to each mark its data holds
    'event: a.done\ndata: {"n":5}\n\n',
    'event: b.done\ndata: {"n":6,"text":"a.done"}\n\n'
  ].join('')
  const expected = ['a.done a.done 1', 'a.done a.done 3', 'b.done - 4', 'b.done b.done 6']
  const bytes = Buffer.from(events)
  for (let cut = 1; cut < bytes.length; cut += 3) {
    offered.length = 0
    const watch = new MarkedEventWatch([watcher('a.done', 2), watcher('b.done', 2)])
    watch.push(bytes.subarray(0, cut))
    watch.push(bytes.subarray(cut))
    watch.push(Buffer.from('event: b.done\ndata: {"n":7}\n\n')) // both have what they wanted: not looked at
    assert.deepEqual(offered, expected, `cut at ${cut}`)
  }
})
