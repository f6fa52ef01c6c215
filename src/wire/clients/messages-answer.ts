import { randomBytes } from 'node:crypto'
import type { Answer, AnswerFailure, AnswerSink, AnswerStart, AnswerUsage, FinishReason, ToolCall } from './answer.js'

const STOP_REASONS: Record<FinishReason, string> = { stop: 'end_turn', stop_sequence: 'stop_sequence', tool_calls: 'tool_use', length: 'max_tokens', content_filter: 'refusal' }

/** An Anthropic Messages answer, whole. Reasoning summaries are not passed on (see the README). */
export function anthropicMessage (answer: Answer, model: string): Record<string, unknown> {
  const content: Array<Record<string, unknown>> = []
  if (answer.text !== '') content.push({ type: 'text', text: answer.text })
  for (const call of answer.toolCalls) content.push({ type: 'tool_use', id: call.id, name: call.name, input: parseArguments(call.arguments) })
  return {
    id: messageId(answer),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: STOP_REASONS[answer.finish ?? 'stop'],
    stop_sequence: answer.stopSequence,
    usage: anthropicUsage(answer.usage)
  }
}

/**
 * Writes Anthropic's event sequence: `message_start`, per block `content_block_start` → deltas →
 * `content_block_stop`, then `message_delta` (stop reason, usage) and `message_stop`.
 */
export class MessagesEventWriter implements AnswerSink {
  private started = false
  private blocks = 0
  /** The block now open: 'text', a tool call's index, or null. */
  private open: 'text' | number | null = null
  private readonly toolBlocks = new Map<number, number>()

  constructor (private readonly model: string, private readonly write: (text: string) => void) {}

  start (meta: AnswerStart): void {
    if (this.started) return
    this.started = true
    const message = { id: messageId(meta), type: 'message', role: 'assistant', model: this.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } }
    this.send('message_start', { type: 'message_start', message })
  }

  text (delta: string): void {
    if (this.open !== 'text') {
      this.closeBlock()
      this.openBlock('text', { type: 'text', text: '' })
    }
    this.send('content_block_delta', { type: 'content_block_delta', index: this.blocks - 1, delta: { type: 'text_delta', text: delta } })
  }

  reasoning (): void {}

  toolCallStart (call: ToolCall): void {
    this.closeBlock()
    this.toolBlocks.set(call.index, this.blocks)
    this.openBlock(call.index, { type: 'tool_use', id: call.id, name: call.name, input: {} })
  }

  toolCallArguments (call: ToolCall, delta: string): void {
    const index = this.toolBlocks.get(call.index)
    if (index !== undefined) this.send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: delta } })
  }

  toolCallEnd (call: ToolCall): void {
    if (this.open === call.index) this.closeBlock()
  }

  finish (reason: FinishReason, usage: AnswerUsage | null, stopSequence?: string): void {
    this.closeBlock()
    this.send('message_delta', { type: 'message_delta', delta: { stop_reason: STOP_REASONS[reason], stop_sequence: stopSequence ?? null }, usage: anthropicUsage(usage) })
    this.send('message_stop', { type: 'message_stop' })
  }

  /** Anthropic's in-stream error event; the stream then ends. */
  fail (failure: AnswerFailure): void {
    const type = /overload|capacity|slow_down/.test(failure.code) ? 'overloaded_error' : 'api_error'
    this.send('error', { type: 'error', error: { type, message: failure.message } })
  }

  private openBlock (which: 'text' | number, block: Record<string, unknown>): void {
    if (!this.started) this.start({ id: randomBytes(12).toString('hex'), created: 0 })
    this.open = which
    this.send('content_block_start', { type: 'content_block_start', index: this.blocks, content_block: block })
    this.blocks += 1
  }

  private closeBlock (): void {
    if (this.open === null) return
    this.open = null
    this.send('content_block_stop', { type: 'content_block_stop', index: this.blocks - 1 })
  }

  private send (event: string, data: Record<string, unknown>): void {
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  }
}

function messageId (meta: AnswerStart): string {
  return `msg_${meta.id.replace(/^resp_/, '')}`
}

/**
 * Anthropic counts an answer's input in parts that add up (`input_tokens` is what the cache did not
 * hold, `cache_read_input_tokens` what it did); the backend's `input_tokens` is the whole input,
 * its cached tokens a part of it.
 */
function anthropicUsage (usage: AnswerUsage | null): Record<string, number> {
  const cached = usage?.cachedInput ?? 0
  return { input_tokens: Math.max(0, (usage?.input ?? 0) - cached), output_tokens: usage?.output ?? 0, cache_read_input_tokens: cached }
}

function parseArguments (text: string): unknown {
  try {
    return JSON.parse(text === '' ? '{}' : text)
  } catch {
    return { _raw: text }
  }
}
