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
  createdAt: number
  /** When set, the stream ends with response.failed carrying this error instead of completing. */
  failure?: { code: string, message: string, resetsAt?: number }
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

  if (spec.failure !== undefined) {
    const error: Record<string, unknown> = { code: spec.failure.code, message: spec.failure.message }
    if (spec.failure.resetsAt !== undefined) error.resets_at = spec.failure.resetsAt
    push('response.failed', { response: responseObject(responseId, spec, 'failed', [], { error }) })
    return events
  }

  const reasoningId = `rs_${randomHex(24)}`
  const reasoning = { id: reasoningId, type: 'reasoning', summary: [], encrypted_content: encryptedContentFor(spec.accountId) }
  push('response.output_item.added', { output_index: 0, item: { id: reasoningId, type: 'reasoning', summary: [] } })
  push('response.output_item.done', { output_index: 0, item: reasoning })

  const messageId = `msg_${randomHex(24)}`
  const part = { type: 'output_text', annotations: [], logprobs: [], text: '' }
  push('response.output_item.added', { output_index: 1, item: { id: messageId, type: 'message', status: 'in_progress', content: [], role: 'assistant' } })
  push('response.content_part.added', { item_id: messageId, output_index: 1, content_index: 0, part })
  for (const delta of split(spec.text, spec.deltas)) {
    push('response.output_text.delta', { item_id: messageId, output_index: 1, content_index: 0, delta, logprobs: [] })
  }
  push('response.output_text.done', { item_id: messageId, output_index: 1, content_index: 0, text: spec.text, logprobs: [] })
  const donePart = { ...part, text: spec.text }
  push('response.content_part.done', { item_id: messageId, output_index: 1, content_index: 0, part: donePart })
  const message = { id: messageId, type: 'message', status: 'completed', content: [donePart], role: 'assistant' }
  push('response.output_item.done', { output_index: 1, item: message })

  const outputTokens = Math.max(1, Math.ceil(spec.text.length / 4))
  const reasoningTokens = 8
  const usage = {
    input_tokens: spec.inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: outputTokens + reasoningTokens,
    output_tokens_details: { reasoning_tokens: reasoningTokens },
    total_tokens: spec.inputTokens + outputTokens + reasoningTokens
  }
  push('response.completed', { response: responseObject(responseId, spec, 'completed', [reasoning, message], { usage }) })
  return events
}
