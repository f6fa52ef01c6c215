import { AnswerCollector, StopSequences, type Answer, type AnswerSink } from './answer.js'
import { chatCompletion, ChatChunkWriter } from './chat-answer.js'
import { chatToResponses } from './chat-request.js'
import type { ClientKind } from './client-errors.js'
import { anthropicMessage, MessagesEventWriter } from './messages-answer.js'
import { messagesToResponses } from './messages-request.js'
import type { ModelAlias } from './model-aliases.js'

/** One client request, translated: what goes upstream and how the answer goes back. */
export interface Translated {
  body: Record<string, unknown>
  model: string
  stream: boolean
  stopSequences: string[]
  /** The sink that writes the client's stream events. */
  writer: (write: (text: string) => void) => AnswerSink
  /** The client's whole answer. */
  whole: (answer: Answer) => Record<string, unknown>
}

/** The sink an answer is read into: the client's own, behind the stop sequences when there are any. */
export function answerSink (call: Translated, sink: AnswerSink): AnswerSink {
  return call.stopSequences.length === 0 ? sink : new StopSequences(sink, call.stopSequences)
}

export interface ClientApi {
  kind: ClientKind
  /** Throws RefusedInput for what cannot be translated. */
  translate: (body: unknown, aliases: readonly ModelAlias[]) => Translated
}

export const CHAT_COMPLETIONS: ClientApi = {
  kind: 'openai',
  translate (raw, aliases) {
    const request = chatToResponses(raw, aliases)
    return {
      ...request,
      writer: (write) => new ChatChunkWriter(request.model, request.includeUsage, write),
      whole: (answer) => chatCompletion(answer, request.model)
    }
  }
}

export const MESSAGES: ClientApi = {
  kind: 'anthropic',
  translate (raw, aliases) {
    const request = messagesToResponses(raw, aliases)
    return {
      ...request,
      writer: (write) => new MessagesEventWriter(request.model, write),
      whole: (answer) => anthropicMessage(answer, request.model)
    }
  }
}

export { AnswerCollector }
