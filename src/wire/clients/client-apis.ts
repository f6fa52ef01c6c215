import { AnswerCollector, StopSequences, type Answer, type AnswerSink } from './answer.js'
import { chatCompletion, ChatChunkWriter } from './chat-answer.js'
import { chatToResponses } from './chat-request.js'
import type { ClientKind } from './client-errors.js'
import { anthropicMessage, MessagesEventWriter } from './messages-answer.js'
import { messagesToResponses } from './messages-request.js'
import type { ModelAlias } from './model-aliases.js'
import { chatFromBytes } from './chat-bytes.js'
import { jsonChunks, notJson, parseKeepingRaw } from './raw-json.js'
import { keptListEnd } from './tool-lists.js'
import { RequestBody } from '../request-body.js'

/** What the pool would otherwise search a body for (its `KnownBody`: the wire does not import the pool). */
export interface BodyFacts {
  conversation: string | null
  carriesBlobs: boolean
  model: string | null
}

/** One client request, translated: what goes upstream and how the answer goes back. */
export interface Translated {
  /**
   * The Codex Responses body: its structure and the client's long strings (views of its body, not
   * copied). Only these bytes are kept: the parsed request and its translation are let go at once,
   * and these once sent (an answer can stream for minutes).
   */
  body: RequestBody
  /** What the pool would otherwise search the body for. */
  known: BodyFacts
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
  /** The client's body as it came (undefined: none). Throws RefusedInput for what cannot be translated, a 400 for a body that is not JSON. */
  translate: (body: Buffer | undefined, aliases: readonly ModelAlias[]) => Translated
}

/** A client's JSON body, its long strings and schemas kept as its bytes (raw-json.ts); a 400 if it is not JSON. */
export function clientJson (body: Buffer | undefined): unknown {
  if (body === undefined) return undefined
  try {
    return parseKeepingRaw(body, keptListEnd)
  } catch (err) {
    throw notJson(err)
  }
}

export const CHAT_COMPLETIONS: ClientApi = {
  kind: 'openai',
  translate (raw, aliases) {
    // Read from its bytes in the common shape, parsed otherwise: the same request either way.
    const read = raw === undefined ? null : chatFromBytes(raw, aliases)
    const { body, model, stream, stopSequences, includeUsage } = read ?? chatToResponses(clientJson(raw), aliases)
    return {
      body: new RequestBody(jsonChunks(body)),
      known: knownOf(body),
      model,
      stream,
      stopSequences,
      writer: (write) => new ChatChunkWriter(model, includeUsage, write),
      whole: (answer) => chatCompletion(answer, model)
    }
  }
}

export const MESSAGES: ClientApi = {
  kind: 'anthropic',
  translate (raw, aliases) {
    const { body, model, stream, stopSequences } = messagesToResponses(clientJson(raw), aliases)
    return {
      body: new RequestBody(jsonChunks(body)),
      known: knownOf(body),
      model,
      stream,
      stopSequences,
      writer: (write) => new MessagesEventWriter(model, write),
      whole: (answer) => anthropicMessage(answer, model)
    }
  }
}

/** The values the pool reads from a body by a byte search, under the same limits (short, no escapes). */
const SEARCHABLE = /^[^"\\\u0000-\u001f]{1,200}$/

/** The pool's facts of a body written here: it never carries encrypted items (no client API here sends them). */
function knownOf (body: Record<string, unknown>): BodyFacts {
  const searchable = (value: unknown): string | null => typeof value === 'string' && SEARCHABLE.test(value) ? value : null
  return { conversation: searchable(body.prompt_cache_key), carriesBlobs: false, model: searchable(body.model) }
}

export { AnswerCollector }
