import type { ModelAlias, ReasoningEffort } from './model-aliases.js'
import { isReasoningEffort, resolveModel } from './model-aliases.js'
import { isEmptyText, isText, RawJson, RawString, stringValue, type Text, type WrittenJson } from './raw-json.js'

/** A client request this service cannot turn into a Codex request: a 400 in the client's own shape. */
export class RefusedInput extends Error {
  constructor (message: string, readonly param: string | null = null) {
    super(message)
    this.name = 'RefusedInput'
  }
}

export type ResponsesItem = Record<string, unknown>
export type InputPart = { type: 'input_text', text: Text } | { type: 'input_image', image_url: Text, detail?: string } | { type: 'output_text', text: Text }

/** Said when a client sends no system prompt: the backend requires `instructions`. */
export const DEFAULT_INSTRUCTIONS = 'You are a helpful assistant.'

export interface ResponsesRequestParts {
  model: string
  instructions: Text
  /** The items, or their JSON written already (chat-bytes.ts). */
  input: ResponsesItem[] | WrittenJson
  /** Translated tools: a list, or the backend's bytes of one translated before (tool-lists.ts). */
  tools: ResponsesItem[] | RawJson
  toolChoice: unknown
  parallelToolCalls: boolean
  effort: ReasoningEffort | null
  /** `text.format`, e.g. a JSON schema. */
  format: Record<string, unknown> | null
  promptCacheKey: string | null
}

/**
 * The body the Codex backend takes (protocol §3): always streamed, never stored, with
 * `instructions`. Model aliases apply here, and the request's own effort wins over the alias's.
 */
export function responsesRequest (parts: ResponsesRequestParts, aliases: readonly ModelAlias[]): Record<string, unknown> {
  const resolved = resolveModel(parts.model, aliases)
  const effort = parts.effort ?? resolved.effort
  const body: Record<string, unknown> = {
    model: resolved.model,
    instructions: isEmptyText(parts.instructions) ? DEFAULT_INSTRUCTIONS : parts.instructions,
    input: parts.input,
    tools: parts.tools,
    tool_choice: parts.toolChoice,
    parallel_tool_calls: parts.parallelToolCalls,
    store: false,
    stream: true
  }
  body.reasoning = effort === null ? { summary: 'auto' } : { effort, summary: 'auto' }
  if (parts.format !== null) body.text = { format: parts.format }
  if (parts.promptCacheKey !== null) body.prompt_cache_key = parts.promptCacheKey
  return body
}

export function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof RawString) && !(value instanceof RawJson)
}

/** A JSON object the translation passes on without reading it (a schema): parsed, or kept raw. */
export function isSchema (value: unknown): value is Record<string, unknown> | RawJson {
  return isObject(value) || value instanceof RawJson
}

/** A string the translation reads (a name, an id): decoded if it came raw. */
export function requireString (value: unknown, param: string): string {
  const text = stringValue(value)
  if (text === undefined) throw new RefusedInput(`${param} must be a string`, param)
  return text
}

/** Text the translation only moves (content, arguments, outputs): kept raw if it came raw. */
export function requireText (value: unknown, param: string): Text {
  if (!isText(value)) throw new RefusedInput(`${param} must be a string`, param)
  return value
}

export function optionalEffort (value: unknown, param: string): ReasoningEffort | null {
  if (value === undefined || value === null) return null
  if (!isReasoningEffort(value)) throw new RefusedInput(`${param} must be one of minimal, low, medium, high, xhigh`, param)
  return value
}

export function optionalBoolean (value: unknown, param: string): boolean | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'boolean') throw new RefusedInput(`${param} must be true or false`, param)
  return value
}

/** A function tool as the Responses API takes it. */
export function functionTool (name: unknown, description: unknown, parameters: unknown, param: string, strict?: unknown): ResponsesItem {
  const toolName = stringValue(name)
  if (toolName === undefined || toolName === '') throw new RefusedInput(`${param}.name must be a non-empty string`, param)
  const tool: ResponsesItem = { type: 'function', name: toolName, parameters: isSchema(parameters) ? parameters : { type: 'object', properties: {} } }
  if (isText(description)) tool.description = description
  tool.strict = strict === true
  return tool
}
