import type { Answer, AnswerFailure, AnswerSink, AnswerStart, AnswerUsage, FinishReason, ToolCall } from './answer.js'

/**
 * Chat Completions answers. Reasoning summaries go out as `reasoning_content` (the field DeepSeek
 * introduced, read by most OpenAI-compatible clients, e.g. LiteLLM, Cline, Open WebUI).
 */
export function chatCompletion (answer: Answer, model: string): Record<string, unknown> {
  const message: Record<string, unknown> = { role: 'assistant', content: answer.toolCalls.length > 0 && answer.text === '' ? null : answer.text, refusal: null }
  if (answer.reasoning !== '') message.reasoning_content = answer.reasoning
  if (answer.toolCalls.length > 0) message.tool_calls = answer.toolCalls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }))
  return {
    id: chatId(answer),
    object: 'chat.completion',
    created: answer.created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(answer.finish ?? 'stop') }],
    usage: chatUsage(answer.usage)
  }
}

/**
 * Writes `chat.completion.chunk` events: one role chunk, deltas, one finish chunk, usage when asked,
 * `[DONE]`. Every chunk is the same JSON but for its delta: that JSON is written once per answer,
 * and per event only the delta is serialized.
 */
export class ChatChunkWriter implements AnswerSink {
  private id = 'chatcmpl-pending'
  private created = Math.floor(Date.now() / 1000)
  private started = false
  /** What every chunk says of the answer (id, object, created, model), as JSON members; made once it is known. */
  private meta: string | null = null
  /** A chunk's text up to its delta. */
  private head = ''

  constructor (private readonly model: string, private readonly includeUsage: boolean, private readonly write: (text: string) => void) {}

  start (meta: AnswerStart): void {
    this.id = chatId(meta)
    this.created = meta.created
    this.meta = null
    this.open()
  }

  text (delta: string): void { this.chunk(`{"content":${JSON.stringify(delta)}}`) }
  reasoning (delta: string): void { this.chunk(`{"reasoning_content":${JSON.stringify(delta)}}`) }
  toolCallStart (call: ToolCall): void {
    this.chunk(JSON.stringify({ tool_calls: [{ index: call.index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }))
  }

  toolCallArguments (call: ToolCall, delta: string): void {
    this.chunk(`{"tool_calls":[{"index":${call.index},"function":{"arguments":${JSON.stringify(delta)}}}]}`)
  }

  toolCallEnd (): void {}

  finish (reason: FinishReason, usage: AnswerUsage | null): void {
    this.chunk('{}', finishReason(reason))
    if (this.includeUsage) this.write(`data: {${this.chunkMeta()},"choices":[],"usage":${JSON.stringify(chatUsage(usage))}}\n\n`)
    this.write('data: [DONE]\n\n')
  }

  /** OpenAI's own in-stream error: a data event with `error` (the SDKs raise it), then the stream ends. */
  fail (failure: AnswerFailure): void {
    this.write(`data: ${JSON.stringify({ error: { message: failure.message, type: 'server_error', code: failure.code, param: null } })}\n\n`)
  }

  private open (): void {
    if (this.started) return
    this.started = true
    this.chunk('{"role":"assistant","content":""}')
  }

  /** One chunk with this delta (its JSON text). */
  private chunk (delta: string, finish: string | null = null): void {
    if (!this.started) this.open()
    if (this.meta === null) this.head = `data: {${this.chunkMeta()},"choices":[{"index":0,"delta":`
    this.write(`${this.head}${delta},"logprobs":null,"finish_reason":${finish === null ? 'null' : JSON.stringify(finish)}}]}\n\n`)
  }

  private chunkMeta (): string {
    return this.meta ??= `"id":${JSON.stringify(this.id)},"object":"chat.completion.chunk","created":${JSON.stringify(this.created)},"model":${JSON.stringify(this.model)}`
  }
}

/** Chat Completions says `stop` for a stop sequence too. */
function finishReason (reason: FinishReason): string {
  return reason === 'stop_sequence' ? 'stop' : reason
}

function chatId (meta: AnswerStart): string {
  return `chatcmpl-${meta.id.replace(/^resp_/, '')}`
}

function chatUsage (usage: AnswerUsage | null): Record<string, unknown> {
  const u = usage ?? { input: 0, cachedInput: 0, output: 0, reasoning: 0, total: 0 }
  return {
    prompt_tokens: u.input,
    completion_tokens: u.output,
    total_tokens: u.total,
    prompt_tokens_details: { cached_tokens: u.cachedInput },
    completion_tokens_details: { reasoning_tokens: u.reasoning }
  }
}
