import type { ModelAlias } from './model-aliases.js'
import { isEmptyText, isText, joinText, RawJson, stringValue, type Text } from './raw-json.js'
import { translatedToolList } from './tool-lists.js'
import { functionTool, isObject, isSchema, optionalBoolean, optionalEffort, RefusedInput, requireString, requireText, responsesRequest, type InputPart, type ResponsesItem } from './responses-request.js'

export interface ChatRequest {
  /** The Codex Responses body to send. */
  body: Record<string, unknown>
  /** The model name the client asked for (answers carry it back). */
  model: string
  stream: boolean
  includeUsage: boolean
  /** `stop`, applied to the answer here (the backend has no stop sequences). */
  stopSequences: string[]
}

/**
 * A Chat Completions request as a Codex Responses request. Sampling settings the backend refuses
 * (`temperature`, `top_p`, `max_tokens`/`max_completion_tokens`, `seed`, penalties) are left out;
 * `stop` is applied to the answer here; what cannot be honoured at all (`n` > 1, audio, files) is refused.
 */
export function chatToResponses (raw: unknown, aliases: readonly ModelAlias[]): ChatRequest {
  if (!isObject(raw)) throw new RefusedInput('the body must be a JSON object')
  const model = requireString(raw.model, 'model')
  if (!Array.isArray(raw.messages) || raw.messages.length === 0) throw new RefusedInput('messages must be a non-empty array', 'messages')
  if (raw.n !== undefined && raw.n !== null && raw.n !== 1) throw new RefusedInput('only n = 1 is supported', 'n')
  const stream = optionalBoolean(raw.stream, 'stream') ?? false
  const streamOptions = raw.stream_options
  const includeUsage = isObject(streamOptions) && streamOptions.include_usage === true

  const instructions: Text[] = []
  const input: ResponsesItem[] = []
  raw.messages.forEach((message: unknown, i: number) => {
    const param = `messages[${i}]`
    if (!isObject(message)) throw new RefusedInput(`${param} must be an object`, param)
    switch (message.role) {
      case 'system':
      case 'developer':
        instructions.push(textOf(message.content, `${param}.content`))
        return
      case 'user':
        input.push(userMessage(userParts(message.content, `${param}.content`)))
        return
      case 'assistant':
        input.push(...assistantItems(message, param))
        return
      case 'tool':
        input.push(functionCallOutput(requireString(message.tool_call_id, `${param}.tool_call_id`), textOf(message.content, `${param}.content`)))
        return
      default:
        throw new RefusedInput(`${param}.role must be system, developer, user, assistant or tool`, `${param}.role`)
    }
  })

  return {
    body: responsesRequest({
      model,
      instructions: joinedInstructions(instructions),
      input,
      tools: chatTools(raw.tools),
      toolChoice: chatToolChoice(raw.tool_choice),
      parallelToolCalls: optionalBoolean(raw.parallel_tool_calls, 'parallel_tool_calls') ?? true,
      effort: optionalEffort(raw.reasoning_effort, 'reasoning_effort'),
      format: responseFormat(raw.response_format),
      promptCacheKey: stringValue(raw.prompt_cache_key) ?? null
    }, aliases),
    model,
    stream,
    includeUsage,
    stopSequences: stopList(raw.stop)
  }
}

/** The system and developer messages' texts as the backend's `instructions`. */
export function joinedInstructions (texts: readonly Text[]): Text {
  return joinText(texts, '\n\n')
}

/** The items a chat request becomes, made here for both readings of it (this one, and chat-bytes.ts's). */
export function inputText (text: Text): InputPart {
  return { type: 'input_text', text }
}

export function userMessage (content: InputPart[]): ResponsesItem {
  return { type: 'message', role: 'user', content }
}

export function assistantMessage (text: Text): ResponsesItem {
  return { type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] }
}

export function functionCall (callId: string, name: string, args: Text): ResponsesItem {
  return { type: 'function_call', call_id: callId, name, arguments: args }
}

export function functionCallOutput (callId: string, output: Text): ResponsesItem {
  return { type: 'function_call_output', call_id: callId, output }
}

function stopList (stop: unknown): string[] {
  if (stop === undefined || stop === null) return []
  const list = isText(stop) ? [stop] : stop
  const strings = Array.isArray(list) && list.length <= 4 ? list.map(stringValue) : [undefined]
  if (!strings.every((entry) => entry !== undefined && entry !== '')) throw new RefusedInput('stop must be a string or up to 4 non-empty strings', 'stop')
  return strings as string[]
}

/** A message's text: a string, or text parts joined. */
function textOf (content: unknown, param: string): Text {
  if (isText(content)) return content
  if (content === null || content === undefined) return ''
  if (!Array.isArray(content)) throw new RefusedInput(`${param} must be a string or an array of parts`, param)
  return joinText(content.map((part: unknown, i) => {
    if (!isObject(part) || part.type !== 'text' || !isText(part.text)) throw new RefusedInput(`${param}[${i}] must be a text part here`, `${param}[${i}]`)
    return part.text
  }))
}

function userParts (content: unknown, param: string): InputPart[] {
  if (isText(content)) return [inputText(content)]
  if (!Array.isArray(content)) throw new RefusedInput(`${param} must be a string or an array of parts`, param)
  return content.map((part: unknown, i): InputPart => {
    const where = `${param}[${i}]`
    if (!isObject(part)) throw new RefusedInput(`${where} must be an object`, where)
    if (part.type === 'text') return inputText(requireText(part.text, `${where}.text`))
    if (part.type === 'image_url') {
      const image = part.image_url
      const url = isText(image) ? image : isObject(image) ? image.url : undefined
      const image_url = requireText(url, `${where}.image_url.url`)
      const detail = isObject(image) ? stringValue(image.detail) : undefined
      return detail === undefined ? { type: 'input_image', image_url } : { type: 'input_image', image_url, detail }
    }
    throw new RefusedInput(`${where}: parts of type ${String(part.type)} are not supported (text and image_url are)`, `${where}.type`)
  })
}

function assistantItems (message: Record<string, unknown>, param: string): ResponsesItem[] {
  const items: ResponsesItem[] = []
  const text = textOf(message.content, `${param}.content`)
  if (!isEmptyText(text)) items.push(assistantMessage(text))
  const calls = message.tool_calls
  if (calls === undefined || calls === null) return items
  if (!Array.isArray(calls)) throw new RefusedInput(`${param}.tool_calls must be an array`, `${param}.tool_calls`)
  calls.forEach((call: unknown, i) => {
    const where = `${param}.tool_calls[${i}]`
    if (!isObject(call) || !isObject(call.function)) throw new RefusedInput(`${where} must be a function call`, where)
    items.push(functionCall(requireString(call.id, `${where}.id`), requireString(call.function.name, `${where}.function.name`), isText(call.function.arguments) ? call.function.arguments : '{}'))
  })
  return items
}

export function chatTools (tools: unknown): ResponsesItem[] | RawJson {
  if (tools instanceof RawJson) return translatedToolList('chat', tools, chatTools)
  if (tools === undefined || tools === null) return []
  if (!Array.isArray(tools)) throw new RefusedInput('tools must be an array', 'tools')
  return tools.map((tool: unknown, i) => {
    const param = `tools[${i}]`
    if (!isObject(tool) || tool.type !== 'function' || !isObject(tool.function)) throw new RefusedInput(`${param}: only function tools are supported`, param)
    const fn = tool.function
    return functionTool(fn.name, fn.description, fn.parameters, `${param}.function`, fn.strict)
  })
}

export function chatToolChoice (choice: unknown): unknown {
  if (choice === undefined || choice === null) return 'auto'
  if (choice === 'auto' || choice === 'none' || choice === 'required') return choice
  const name = isObject(choice) && choice.type === 'function' && isObject(choice.function) ? stringValue(choice.function.name) : undefined
  if (name !== undefined) {
    return { type: 'function', name }
  }
  throw new RefusedInput('tool_choice must be auto, none, required or {"type":"function","function":{"name":…}}', 'tool_choice')
}

function responseFormat (format: unknown): Record<string, unknown> | null {
  if (format === undefined || format === null) return null
  if (!isObject(format)) throw new RefusedInput('response_format must be an object', 'response_format')
  if (format.type === 'text') return null
  if (format.type === 'json_object') return { type: 'json_object' }
  if (format.type === 'json_schema' && isObject(format.json_schema)) {
    const spec = format.json_schema
    const out: Record<string, unknown> = { type: 'json_schema', name: requireString(spec.name, 'response_format.json_schema.name'), schema: isSchema(spec.schema) ? spec.schema : {} }
    if (typeof spec.strict === 'boolean') out.strict = spec.strict
    if (isText(spec.description)) out.description = spec.description
    return out
  }
  throw new RefusedInput('response_format.type must be text, json_object or json_schema', 'response_format')
}
