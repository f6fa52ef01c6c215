/**
 * What a Responses stream says, in terms every client API can render: `ResponsesReader` turns the
 * backend's events into calls on an `AnswerSink`; each client API has a sink that writes its own
 * stream events, and `AnswerCollector` gathers a whole answer for clients that did not stream.
 */
export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter'

export interface AnswerUsage {
  input: number
  cachedInput: number
  output: number
  reasoning: number
  total: number
}

export interface AnswerStart {
  id: string
  model: string
  /** Unix seconds. */
  created: number
}

export interface ToolCall {
  /** 0, 1, … in the order the calls began: stable for the whole answer. */
  index: number
  id: string
  name: string
  arguments: string
}

export interface AnswerFailure {
  code: string
  message: string
}

export interface AnswerSink {
  start: (meta: AnswerStart) => void
  text: (delta: string) => void
  reasoning: (delta: string) => void
  toolCallStart: (call: ToolCall) => void
  toolCallArguments: (call: ToolCall, delta: string) => void
  toolCallEnd: (call: ToolCall) => void
  finish: (reason: FinishReason, usage: AnswerUsage | null) => void
  /** The answer broke off (`response.failed`, an error event, a cut stream): no finish follows. */
  fail: (failure: AnswerFailure) => void
}

export interface Answer extends AnswerStart {
  text: string
  reasoning: string
  toolCalls: ToolCall[]
  finish: FinishReason | null
  usage: AnswerUsage | null
  failure: AnswerFailure | null
}

/** Gathers a whole answer (for clients that asked without `stream`). */
export class AnswerCollector implements AnswerSink {
  readonly answer: Answer = { id: '', model: '', created: 0, text: '', reasoning: '', toolCalls: [], finish: null, usage: null, failure: null }

  start (meta: AnswerStart): void { Object.assign(this.answer, meta) }
  text (delta: string): void { this.answer.text += delta }
  reasoning (delta: string): void { this.answer.reasoning += delta }
  toolCallStart (call: ToolCall): void { this.answer.toolCalls.push(call) }
  toolCallArguments (): void {} // the call object itself grows
  toolCallEnd (): void {}
  finish (reason: FinishReason, usage: AnswerUsage | null): void {
    this.answer.finish = reason
    this.answer.usage = usage
  }

  fail (failure: AnswerFailure): void { this.answer.failure = failure }
}
