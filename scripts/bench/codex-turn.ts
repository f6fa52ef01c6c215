import { randomUUID } from 'node:crypto'

/**
 * What the benchmark sends and answers: a Codex-like turn. The request is a `/responses` body of
 * about 40 KB (instructions, tools, a conversation with encrypted reasoning and tool output); the
 * answer is the 8 SSE events of a short turn.
 */

const filler = (label: string, bytes: number): string => `${label}: ${'lorem ipsum dolor sit amet '.repeat(Math.ceil(bytes / 27))}`.slice(0, bytes)

export function codexRequestBody (targetBytes = 40 * 1024): Buffer {
  const conversation = randomUUID()
  const tool = (name: string) => ({
    type: 'function',
    name,
    description: filler(`${name} description`, 600),
    strict: false,
    parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } }, workdir: { type: 'string' }, timeout_ms: { type: 'number' } }, required: ['command'] }
  })
  const body = {
    model: 'gpt-5-codex',
    instructions: filler('You are Codex, a coding agent', 12 * 1024),
    input: [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: filler('<environment_context>', 1024) }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Fix the failing test in src/parser.ts' }] },
      { type: 'reasoning', summary: [], encrypted_content: `gAAAA${Buffer.alloc(3 * 1024, 7).toString('base64')}` },
      { type: 'function_call', name: 'shell', arguments: '{"command":["cat","src/parser.ts"]}', call_id: 'call_1' },
      { type: 'function_call_output', call_id: 'call_1', output: '' }
    ] as Array<Record<string, unknown>>,
    tools: ['shell', 'apply_patch', 'update_plan', 'view_image', 'web_search'].map(tool),
    tool_choice: 'auto',
    parallel_tool_calls: false,
    reasoning: { effort: 'medium', summary: 'auto' },
    store: false,
    stream: true,
    include: ['reasoning.encrypted_content'],
    prompt_cache_key: conversation
  }
  const size = Buffer.byteLength(JSON.stringify(body))
  body.input[4]!.output = filler('export function parse', Math.max(0, targetBytes - size))
  return Buffer.from(JSON.stringify(body))
}

/** The headers the Codex CLI sends with a turn (no Authorization: the pool adds the account's). */
export function codexRequestHeaders (): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'text/event-stream',
    originator: 'codex_cli_rs',
    'user-agent': 'codex_cli_rs/0.169.0 (Debian 12; x86_64) bench',
    'session-id': randomUUID()
  }
}

const sse = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`

/** The 8 events of a short turn, as the backend writes them. */
export function turnEvents (): string[] {
  const response = (status: string, output: unknown[]) => ({ id: 'resp_bench', object: 'response', created_at: 1_760_000_000, status, model: 'gpt-5-codex', output, error: null, store: false, tools: [], usage: status === 'completed' ? { input_tokens: 9000, output_tokens: 12, total_tokens: 9012 } : null })
  const item = { id: 'msg_bench', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Done: the test passes now.', annotations: [] }] }
  return [
    sse('response.created', { response: response('in_progress', []) }),
    sse('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } }),
    sse('response.output_text.delta', { item_id: 'msg_bench', output_index: 0, content_index: 0, delta: 'Done: ' }),
    sse('response.output_text.delta', { item_id: 'msg_bench', output_index: 0, content_index: 0, delta: 'the test ' }),
    sse('response.output_text.delta', { item_id: 'msg_bench', output_index: 0, content_index: 0, delta: 'passes now.' }),
    sse('response.output_text.done', { item_id: 'msg_bench', output_index: 0, content_index: 0, text: 'Done: the test passes now.' }),
    sse('response.output_item.done', { output_index: 0, item }),
    sse('response.completed', { response: response('completed', [item]) })
  ]
}

/** Quota headers as the backend sends them on every answer (the app reads them on each one). */
export const QUOTA_HEADERS: Record<string, string> = {
  'x-codex-primary-used-percent': '12',
  'x-codex-primary-window-minutes': '300',
  'x-codex-primary-reset-after-seconds': '9000',
  'x-codex-secondary-used-percent': '40',
  'x-codex-secondary-window-minutes': '10080',
  'x-codex-secondary-reset-after-seconds': '400000',
  'x-codex-plan-type': 'plus'
}

const STAMP = /"bench_sent_ns":"(\d+)"/

/** An event carrying the time it was written (process.hrtime, i.e. CLOCK_MONOTONIC: one clock for every process on the machine). */
export function stampedEvent (type: string, index: number): string {
  return sse(type, { sequence_number: index, delta: 'x'.repeat(120), bench_sent_ns: String(process.hrtime.bigint()) })
}

export function readStamp (event: string): bigint | null {
  const match = STAMP.exec(event)
  return match === null ? null : BigInt(match[1]!)
}

/**
 * The same conversation as `codexRequestBody` in Chat Completions form (system prompt, tools, a
 * tool call and its output), streamed with usage: the translated path's request of the same size.
 */
export function chatRequestBody (targetBytes = 40 * 1024): Buffer {
  const tool = (name: string) => ({
    type: 'function',
    function: { name, description: filler(`${name} description`, 600), parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } }, workdir: { type: 'string' }, timeout_ms: { type: 'number' } }, required: ['command'] } }
  })
  const body = {
    model: 'gpt-5-codex',
    messages: [
      { role: 'system', content: filler('You are Codex, a coding agent', 12 * 1024) },
      { role: 'user', content: filler('<environment_context>', 1024) },
      { role: 'user', content: 'Fix the failing test in src/parser.ts' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'shell', arguments: '{"command":["cat","src/parser.ts"]}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '' }
    ] as Array<Record<string, unknown>>,
    tools: ['shell', 'apply_patch', 'update_plan', 'view_image', 'web_search'].map(tool),
    tool_choice: 'auto',
    parallel_tool_calls: false,
    reasoning_effort: 'medium',
    stream: true,
    stream_options: { include_usage: true }
  }
  const size = Buffer.byteLength(JSON.stringify(body))
  body.messages[4]!.content = filler('export function parse', Math.max(0, targetBytes - size))
  return Buffer.from(JSON.stringify(body))
}
