/**
 * What a Responses stream says, in terms every client API can render: `ResponsesReader` turns the
 * backend's events into calls on an `AnswerSink`; each client API has a sink that writes its own
 * stream events, and `AnswerCollector` gathers a whole answer for clients that did not stream.
 */
export type FinishReason = 'stop' | 'stop_sequence' | 'tool_calls' | 'length' | 'content_filter'

export interface AnswerUsage {
  input: number
  cachedInput: number
  output: number
  reasoning: number
  total: number
}

export interface AnswerStart {
  id: string
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
  /** `stopSequence`: the client's stop sequence the text was cut at. */
  finish: (reason: FinishReason, usage: AnswerUsage | null, stopSequence?: string) => void
  /** The answer broke off (`response.failed`, an error event, a cut stream): no finish follows. */
  fail: (failure: AnswerFailure) => void
}

export interface Answer extends AnswerStart {
  text: string
  reasoning: string
  toolCalls: ToolCall[]
  finish: FinishReason | null
  stopSequence: string | null
  usage: AnswerUsage | null
  failure: AnswerFailure | null
}

/** Gathers a whole answer (for clients that asked without `stream`). */
export class AnswerCollector implements AnswerSink {
  readonly answer: Answer = { id: '', created: 0, text: '', reasoning: '', toolCalls: [], finish: null, stopSequence: null, usage: null, failure: null }

  start (meta: AnswerStart): void { Object.assign(this.answer, meta) }
  text (delta: string): void { this.answer.text += delta }
  reasoning (delta: string): void { this.answer.reasoning += delta }
  toolCallStart (call: ToolCall): void { this.answer.toolCalls.push(call) }
  toolCallArguments (): void {} // the call object itself grows
  toolCallEnd (): void {}
  finish (reason: FinishReason, usage: AnswerUsage | null, stopSequence?: string): void {
    this.answer.finish = reason
    this.answer.usage = usage
    this.answer.stopSequence = stopSequence ?? null
  }

  fail (failure: AnswerFailure): void { this.answer.failure = failure }
}

/**
 * Client-side stop sequences (the backend takes none): text passes on held back by the longest
 * sequence's length less one, so a sequence split across deltas is still caught; at the first
 * match the text ends there and the rest of the answer is swallowed. The finish waits for the
 * backend's end, which brings the usage.
 */
export class StopSequences implements AnswerSink {
  private held = ''
  private matched: string | null = null
  private readonly keep: number

  constructor (private readonly inner: AnswerSink, private readonly sequences: readonly string[]) {
    this.keep = Math.max(...sequences.map((sequence) => sequence.length)) - 1
  }

  start (meta: AnswerStart): void { this.inner.start(meta) }

  text (delta: string): void {
    if (this.matched !== null) return
    this.held += delta
    let cut = -1
    for (const sequence of this.sequences) {
      const at = this.held.indexOf(sequence)
      if (at !== -1 && (cut === -1 || at < cut)) {
        cut = at
        this.matched = sequence
      }
    }
    const upTo = cut !== -1 ? cut : this.held.length - this.keep
    if (upTo > 0) this.inner.text(this.held.slice(0, upTo))
    this.held = cut !== -1 ? '' : this.held.slice(Math.max(upTo, 0))
  }

  reasoning (delta: string): void { if (this.matched === null) this.inner.reasoning(delta) }
  toolCallStart (call: ToolCall): void { if (this.open()) this.inner.toolCallStart(call) }
  toolCallArguments (call: ToolCall, delta: string): void { if (this.matched === null) this.inner.toolCallArguments(call, delta) }
  toolCallEnd (call: ToolCall): void { if (this.matched === null) this.inner.toolCallEnd(call) }

  finish (reason: FinishReason, usage: AnswerUsage | null): void {
    if (this.open()) this.inner.finish(reason, usage)
    else this.inner.finish('stop_sequence', usage, this.matched!)
  }

  fail (failure: AnswerFailure): void {
    if (this.open()) this.inner.fail(failure)
    else this.inner.finish('stop_sequence', null, this.matched!)
  }

  /** Releases held text; false once a sequence matched. */
  private open (): boolean {
    if (this.matched !== null) return false
    if (this.held !== '') this.inner.text(this.held)
    this.held = ''
    return true
  }
}
