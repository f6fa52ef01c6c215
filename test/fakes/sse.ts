import { randomHex, randomId } from './jwt.js'

export interface SseEvent {
  type: string
  data: Record<string, unknown>
}

export interface TurnSpec {
  accountId: string
  model: string
  text: string
  deltas: number
  inputTokens: number
  /** Of the input tokens, how many the backend found in its prompt cache (0 when not said). */
  cachedTokens?: number
  createdAt: number
  /**
   * When set, the stream ends with response.failed carrying this error instead of completing; with
   * `afterContent` the reasoning item and a first text delta come before the failure.
   */
  failure?: { code: string, message: string, resetsAt?: number, afterContent?: boolean }
  /** Also emit a `compaction` item (remote compaction v2) before the message. */
  compaction?: boolean
  /** Also emit an `agent_message` item carrying an encrypted part before the message. */
  agentMessage?: boolean
  /** Instead of the message: a `function_call` item (the model asks the client to run a tool). */
  toolCall?: { name: string, arguments: string }
  /** Function calls after the message, their arguments streamed in two deltas each (parallel calls: several). */
  toolCalls?: Array<{ name: string, arguments: string }>
}

export function formatEvent (event: SseEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`
}

/** Reasoning made under one account carries that account; the backend refuses it under another. */
export function encryptedContentFor (accountId: string): string {
  return `enc:${accountId}:${randomId(24)}`
}

export function accountOfEncryptedContent (content: string): string | null {
  const end = content.lastIndexOf(':')
  return content.startsWith('enc:') && end > 4 ? content.slice(4, end) : null
}

/** A turn state as the backend mints it: `ts_<accountId>_<random>`. */
export function turnStateFor (accountId: string): string {
  return `ts_${accountId}_${randomHex(16)}`
}

/** The account a turn state was minted for, or null when it is not one of ours. */
export function accountOfTurnState (value: string): string | null {
  const end = value.lastIndexOf('_')
  return value.startsWith('ts_') && end > 3 ? value.slice(3, end) : null
}

function responseObject (id: string, spec: TurnSpec, status: string, output: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    object: 'response',
    created_at: spec.createdAt,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model: spec.model,
    output,
    parallel_tool_calls: false,
    previous_response_id: null,
    reasoning: { effort: 'medium', summary: 'auto' },
    store: false,
    text: { format: { type: 'text' }, verbosity: 'medium' },
    tool_choice: 'auto',
    tools: [],
    truncation: 'disabled',
    usage: null,
    user: null,
    metadata: {},
    ...extra
  }
}

function split (text: string, parts: number): string[] {
  const n = Math.max(1, Math.min(parts, text.length))
  const size = Math.ceil(text.length / n)
  const chunks: string[] = []
  for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size))
  return chunks
}

/** The events of one turn, in the order and shape the Responses API streams them. */
export function turnEvents (spec: TurnSpec): SseEvent[] {
  const responseId = `resp_${randomHex(24)}`
  const events: SseEvent[] = []
  const push = (type: string, data: Record<string, unknown>): void => {
    events.push({ type, data: { type, sequence_number: events.length, ...data } })
  }
  push('response.created', { response: responseObject(responseId, spec, 'in_progress', []) })
  push('response.in_progress', { response: responseObject(responseId, spec, 'in_progress', []) })

  const failure = spec.failure
  const fail = (output: unknown[]): SseEvent[] => {
    const error: Record<string, unknown> = { code: failure!.code, message: failure!.message }
    if (failure!.resetsAt !== undefined) error.resets_at = failure!.resetsAt
    push('response.failed', { response: responseObject(responseId, spec, 'failed', output, { error }) })
    return events
  }
  if (failure !== undefined && failure.afterContent !== true) return fail([])

  const output: unknown[] = []
  const reasoningId = `rs_${randomHex(24)}`
  const reasoning = { id: reasoningId, type: 'reasoning', summary: [], encrypted_content: encryptedContentFor(spec.accountId) }
  push('response.output_item.added', { output_index: output.length, item: { id: reasoningId, type: 'reasoning', summary: [] } })
  push('response.output_item.done', { output_index: output.length, item: reasoning })
  output.push(reasoning)

  if (spec.compaction === true && failure === undefined) {
    const compaction = { type: 'compaction', encrypted_content: encryptedContentFor(spec.accountId) }
    push('response.output_item.added', { output_index: output.length, item: { type: 'compaction' } })
    push('response.output_item.done', { output_index: output.length, item: compaction })
    output.push(compaction)
  }
  if (spec.agentMessage === true && failure === undefined) {
    const agentId = `am_${randomHex(24)}`
    const agent = { type: 'agent_message', id: agentId, content: [{ type: 'encrypted_content', encrypted_content: encryptedContentFor(spec.accountId) }] }
    push('response.output_item.added', { output_index: output.length, item: { type: 'agent_message', id: agentId, content: [] } })
    push('response.output_item.done', { output_index: output.length, item: agent })
    output.push(agent)
  }

  if (spec.toolCall !== undefined && failure === undefined) {
    const call = { id: `fc_${randomHex(24)}`, type: 'function_call', status: 'completed', call_id: `call_${randomHex(12)}`, name: spec.toolCall.name, arguments: spec.toolCall.arguments }
    push('response.output_item.added', { output_index: output.length, item: { ...call, status: 'in_progress', arguments: '' } })
    push('response.output_item.done', { output_index: output.length, item: call })
    output.push(call)
    return complete(output)
  }

  const messageId = `msg_${randomHex(24)}`
  const index = output.length
  const part = { type: 'output_text', annotations: [], logprobs: [], text: '' }
  push('response.output_item.added', { output_index: index, item: { id: messageId, type: 'message', status: 'in_progress', content: [], role: 'assistant' } })
  push('response.content_part.added', { item_id: messageId, output_index: index, content_index: 0, part })
  const chunks = split(spec.text, spec.deltas)
  if (failure !== undefined) {
    push('response.output_text.delta', { item_id: messageId, output_index: index, content_index: 0, delta: chunks[0] ?? '', logprobs: [] })
    return fail(output)
  }
  for (const delta of chunks) {
    push('response.output_text.delta', { item_id: messageId, output_index: index, content_index: 0, delta, logprobs: [] })
  }
  push('response.output_text.done', { item_id: messageId, output_index: index, content_index: 0, text: spec.text, logprobs: [] })
  const donePart = { ...part, text: spec.text }
  push('response.content_part.done', { item_id: messageId, output_index: index, content_index: 0, part: donePart })
  const message = { id: messageId, type: 'message', status: 'completed', content: [donePart], role: 'assistant' }
  push('response.output_item.done', { output_index: index, item: message })
  output.push(message)

  for (const call of spec.toolCalls ?? []) {
    const item = { id: `fc_${randomHex(24)}`, type: 'function_call', status: 'in_progress', call_id: `call_${randomHex(12)}`, name: call.name, arguments: '' }
    const at = output.length
    push('response.output_item.added', { output_index: at, item })
    const half = Math.ceil(call.arguments.length / 2)
    for (const delta of [call.arguments.slice(0, half), call.arguments.slice(half)]) {
      push('response.function_call_arguments.delta', { item_id: item.id, output_index: at, delta })
    }
    push('response.function_call_arguments.done', { item_id: item.id, output_index: at, arguments: call.arguments })
    const done = { ...item, status: 'completed', arguments: call.arguments }
    push('response.output_item.done', { output_index: at, item: done })
    output.push(done)
  }


  return complete(output)

  function complete (items: unknown[]): SseEvent[] {
    const outputTokens = Math.max(1, Math.ceil(spec.text.length / 4))
    const reasoningTokens = 8
    const usage = {
      input_tokens: spec.inputTokens,
      input_tokens_details: { cached_tokens: spec.cachedTokens ?? 0 },
      output_tokens: outputTokens + reasoningTokens,
      output_tokens_details: { reasoning_tokens: reasoningTokens },
      total_tokens: spec.inputTokens + outputTokens + reasoningTokens
    }
    push('response.completed', { response: responseObject(responseId, spec, 'completed', items, { usage }) })
    return events
  }
}
