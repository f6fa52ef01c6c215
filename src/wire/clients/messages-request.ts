import { hash } from 'node:crypto'
import type { ModelAlias, ReasoningEffort } from './model-aliases.js'
import { isText, joinText, RawJson, stringValue, type Text } from './raw-json.js'
import { translatedToolList } from './tool-lists.js'
import { functionTool, isObject, optionalBoolean, RefusedInput, requireString, requireText, responsesRequest, type InputPart, type ResponsesItem } from './responses-request.js'

export interface MessagesRequest {
  body: Record<string, unknown>
  model: string
  stream: boolean
  /** Cut the text at the first of these (the backend has no stop sequences). */
  stopSequences: string[]
}

/**
 * An Anthropic Messages request as a Codex Responses request. `thinking` becomes a reasoning
 * effort, `metadata.user_id` a prompt cache key; `max_tokens`, `temperature`, `top_p`, `top_k` and
 * the rest of `metadata` are left out (the backend takes none of them); thinking blocks of earlier
 * turns are dropped (they were not made here); documents and Anthropic's server tools are refused.
 */
export function messagesToResponses (raw: unknown, aliases: readonly ModelAlias[]): MessagesRequest {
  if (!isObject(raw)) throw new RefusedInput('the body must be a JSON object')
  const model = requireString(raw.model, 'model')
  if (raw.max_tokens !== undefined && (!Number.isInteger(raw.max_tokens) || (raw.max_tokens as number) < 1)) throw new RefusedInput('max_tokens must be a positive integer', 'max_tokens')
  if (!Array.isArray(raw.messages) || raw.messages.length === 0) throw new RefusedInput('messages must be a non-empty array', 'messages')
  const input: ResponsesItem[] = []
  raw.messages.forEach((message: unknown, i: number) => {
    const param = `messages[${i}]`
    if (!isObject(message) || (message.role !== 'user' && message.role !== 'assistant')) throw new RefusedInput(`${param}.role must be user or assistant`, `${param}.role`)
    input.push(...messageItems(message.role, message.content, `${param}.content`))
  })
  const toolChoice = messagesToolChoice(raw.tool_choice)
  return {
    body: responsesRequest({
      model,
      instructions: systemText(raw.system),
      input,
      tools: messagesTools(raw.tools),
      toolChoice: toolChoice.choice,
      parallelToolCalls: toolChoice.parallel,
      effort: thinkingEffort(raw.thinking),
      format: null,
      promptCacheKey: promptCacheKey(raw.metadata)
    }, aliases),
    model,
    stream: optionalBoolean(raw.stream, 'stream') ?? false,
    stopSequences: stopSequences(raw.stop_sequences)
  }
}

/**
 * The backend keys its prompt cache by `prompt_cache_key`, and the pool keeps a conversation on its
 * account by it. Anthropic has no such field, but its clients name the user and session a request
 * belongs to in `metadata.user_id` (Claude Code: one per session), so that becomes the key: hashed,
 * since it is the client's identifier and not the backend's business.
 */
function promptCacheKey (metadata: unknown): string | null {
  if (!isObject(metadata) || typeof metadata.user_id !== 'string' || metadata.user_id === '') return null
  return `messages-${hash('sha256', metadata.user_id, 'hex').slice(0, 32)}`
}

function systemText (system: unknown): Text {
  if (system === undefined || system === null) return ''
  if (isText(system)) return system
  if (!Array.isArray(system)) throw new RefusedInput('system must be a string or an array of text blocks', 'system')
  return joinText(system.map((block: unknown, i) => {
    if (!isObject(block) || block.type !== 'text') throw new RefusedInput(`system[${i}] must be a text block`, `system[${i}]`)
    return requireText(block.text, `system[${i}].text`)
  }), '\n\n')
}

/**
 * One message's blocks as Responses items, in order: text and images gather into a message item;
 * a `tool_use` becomes a `function_call`, a `tool_result` a `function_call_output`.
 */
function messageItems (role: 'user' | 'assistant', content: unknown, param: string): ResponsesItem[] {
  const textType = role === 'user' ? 'input_text' : 'output_text'
  if (isText(content)) return [{ type: 'message', role, content: [{ type: textType, text: content }] }]
  if (!Array.isArray(content)) throw new RefusedInput(`${param} must be a string or an array of blocks`, param)
  const items: ResponsesItem[] = []
  let parts: InputPart[] = []
  const flush = (): void => {
    if (parts.length > 0) items.push({ type: 'message', role, content: parts })
    parts = []
  }
  content.forEach((block: unknown, i) => {
    const where = `${param}[${i}]`
    if (!isObject(block)) throw new RefusedInput(`${where} must be an object`, where)
    switch (block.type) {
      case 'text':
        parts.push({ type: textType, text: requireText(block.text, `${where}.text`) } as InputPart)
        return
      case 'image':
        if (role !== 'user') throw new RefusedInput(`${where}: images are only accepted from the user`, where)
        parts.push(imagePart(block.source, `${where}.source`))
        return
      case 'tool_use':
        flush()
        items.push({ type: 'function_call', call_id: requireString(block.id, `${where}.id`), name: requireString(block.name, `${where}.name`), arguments: JSON.stringify(block.input ?? {}) })
        return
      case 'tool_result':
        flush()
        items.push({ type: 'function_call_output', call_id: requireString(block.tool_use_id, `${where}.tool_use_id`), output: toolResultOutput(block, where) })
        return
      case 'thinking':
      case 'redacted_thinking':
        return
      default:
        throw new RefusedInput(`${where}: blocks of type ${String(block.type)} are not supported (text, image, tool_use, tool_result are)`, `${where}.type`)
    }
  })
  flush()
  return items
}

function imagePart (source: unknown, param: string): InputPart {
  if (isObject(source) && source.type === 'base64') {
    return { type: 'input_image', image_url: joinText([`data:${requireString(source.media_type, `${param}.media_type`)};base64,`, requireText(source.data, `${param}.data`)]) }
  }
  if (isObject(source) && source.type === 'url') return { type: 'input_image', image_url: requireText(source.url, `${param}.url`) }
  throw new RefusedInput(`${param} must be a base64 or url image source`, param)
}

/** A tool's result: its text (an error marked as one), or text and images as parts. */
function toolResultOutput (block: Record<string, unknown>, param: string): Text | InputPart[] {
  const prefix = block.is_error === true ? 'Error: ' : ''
  const content = block.content
  if (content === undefined || content === null) return prefix
  if (isText(content)) return joinText([prefix, content])
  if (!Array.isArray(content)) throw new RefusedInput(`${param}.content must be a string or an array of blocks`, `${param}.content`)
  const parts = content.map((inner: unknown, i): InputPart => {
    const where = `${param}.content[${i}]`
    if (isObject(inner) && inner.type === 'text') return { type: 'input_text', text: requireText(inner.text, `${where}.text`) }
    if (isObject(inner) && inner.type === 'image') return imagePart(inner.source, `${where}.source`)
    throw new RefusedInput(`${where} must be a text or image block`, where)
  })
  if (parts.every((part) => part.type === 'input_text')) return joinText([prefix, joinText(parts.map((part) => (part as { text: Text }).text), '\n')])
  return prefix === '' ? parts : [{ type: 'input_text', text: prefix }, ...parts]
}

function messagesTools (tools: unknown): ResponsesItem[] | RawJson {
  if (tools instanceof RawJson) return translatedToolList('messages', tools, messagesTools)
  if (tools === undefined || tools === null) return []
  if (!Array.isArray(tools)) throw new RefusedInput('tools must be an array', 'tools')
  return tools.map((tool: unknown, i) => {
    const param = `tools[${i}]`
    if (!isObject(tool) || (tool.type !== undefined && tool.type !== 'custom')) throw new RefusedInput(`${param}: only custom tools with an input_schema are supported`, param)
    return functionTool(tool.name, tool.description, tool.input_schema, param)
  })
}

function messagesToolChoice (choice: unknown): { choice: unknown, parallel: boolean } {
  if (choice === undefined || choice === null) return { choice: 'auto', parallel: true }
  if (!isObject(choice)) throw new RefusedInput('tool_choice must be an object', 'tool_choice')
  const parallel = choice.disable_parallel_tool_use !== true
  switch (choice.type) {
    case 'auto': return { choice: 'auto', parallel }
    case 'any': return { choice: 'required', parallel }
    case 'none': return { choice: 'none', parallel }
    case 'tool': return { choice: { type: 'function', name: requireString(choice.name, 'tool_choice.name') }, parallel }
    default: throw new RefusedInput('tool_choice.type must be auto, any, tool or none', 'tool_choice.type')
  }
}

/** Extended thinking's budget as a reasoning effort; without `thinking` the alias (or the backend) decides. */
function thinkingEffort (thinking: unknown): ReasoningEffort | null {
  if (thinking === undefined || thinking === null) return null
  if (!isObject(thinking)) throw new RefusedInput('thinking must be an object', 'thinking')
  if (thinking.type === 'disabled') return 'low'
  if (thinking.type !== 'enabled') throw new RefusedInput('thinking.type must be enabled or disabled', 'thinking.type')
  const budget = typeof thinking.budget_tokens === 'number' ? thinking.budget_tokens : 0
  return budget >= 16_000 ? 'high' : budget >= 4_000 ? 'medium' : 'low'
}

function stopSequences (value: unknown): string[] {
  if (value === undefined || value === null) return []
  const strings = Array.isArray(value) ? value.map(stringValue) : [undefined]
  if (!strings.every((entry) => entry !== undefined && entry !== '')) throw new RefusedInput('stop_sequences must be an array of non-empty strings', 'stop_sequences')
  return strings as string[]
}

/** `count_tokens`: an estimate of about four characters a token over what the backend would read. */
export function estimateTokens (body: Record<string, unknown>): number {
  const text = JSON.stringify([body.instructions, body.input, body.tools])
  return Math.max(1, Math.ceil(text.length / 4))
}
