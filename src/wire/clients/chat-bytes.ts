import { assistantMessage, chatToolChoice, chatTools, functionCall, functionCallOutput, inputText, joinedInstructions, userMessage, type ChatRequest } from './chat-request.js'
import { JsonCursor } from './json-cursor.js'
import { REASONING_EFFORTS, type ModelAlias, type ReasoningEffort } from './model-aliases.js'
import { objectEnd, RAW_FROM, RawJson, RawString, WrittenJson, type Text } from './raw-json.js'
import { responsesRequest, type ResponsesItem } from './responses-request.js'
import { keptListEnd } from './tool-lists.js'

/**
 * A chat request in the shape coding agents send, read from its bytes. Parsing a client's JSON
 * into objects, walking them and writing the items back out cost more than all the rest of a
 * translated request's way: here the bytes are read once, in place, and the input items written
 * as they are read, from templates the item builders of chat-request.ts make (so the items have
 * one shape, wherever they are made). The values are those `parseKeepingRaw` gives (short strings
 * decoded, long ones and the tools list the client's bytes), and the rest of the request goes
 * through `responsesRequest` as a parsed one does: both readings send the same bytes.
 *
 * Only that shape is read: string contents, function tool calls, the fields listed below, each
 * once. Anything else (content parts, images, `response_format`, `stop`, a tool choice naming a
 * function, a name written with escapes, any other field, JSON this reader does not take) gives
 * null, and the general reading (`chatToResponses`) takes the request, with its own errors: this
 * one refuses nothing, it only declines.
 */
export function chatFromBytes (bytes: Buffer, aliases: readonly ModelAlias[]): ChatRequest | null {
  const cursor = new JsonCursor(bytes)
  const read: ReadFields = { model: undefined, messages: false, instructions: [], input: new ItemWriter(), tools: undefined, toolChoice: undefined, parallelToolCalls: null, effort: null, stream: null, includeUsage: false, promptCacheKey: null }
  if (!cursor.object(FIELDS, (field) => readField(cursor, field, read)) || !cursor.atEnd() || read.model === undefined || !read.messages) return null
  return {
    // As `chatToResponses` makes it: only the tools list can still be refused, as it would be there.
    body: responsesRequest({
      model: read.model,
      instructions: joinedInstructions(read.instructions),
      input: read.input.written(),
      tools: chatTools(read.tools),
      toolChoice: chatToolChoice(read.toolChoice),
      parallelToolCalls: read.parallelToolCalls ?? true,
      effort: read.effort,
      format: null,
      promptCacheKey: read.promptCacheKey
    }, aliases),
    model: read.model,
    stream: read.stream ?? false,
    includeUsage: read.includeUsage,
    stopSequences: []
  }
}

interface ReadFields {
  model: string | undefined
  messages: boolean
  instructions: Text[]
  input: ItemWriter
  tools: RawJson | undefined
  toolChoice: string | undefined
  /** Null for `null`, undefined when not given (or not a flag). */
  parallelToolCalls: boolean | null | undefined
  effort: ReasoningEffort | null
  stream: boolean | null | undefined
  includeUsage: boolean
  promptCacheKey: string | null
}

/** The fields read, then those a Codex request leaves out (sampling settings the backend refuses, and the like): checked and skipped. */
const READ_FIELDS = ['model', 'messages', 'tools', 'tool_choice', 'parallel_tool_calls', 'reasoning_effort', 'stream', 'stream_options', 'prompt_cache_key', 'n']
const LEFT_OUT = ['temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'seed', 'presence_penalty', 'frequency_penalty', 'user', 'store', 'service_tier']
const FIELDS = [...READ_FIELDS, ...LEFT_OUT].map((name) => Buffer.from(name))
const [MODEL, MESSAGES, TOOLS, TOOL_CHOICE, PARALLEL_TOOL_CALLS, REASONING_EFFORT, STREAM, STREAM_OPTIONS, PROMPT_CACHE_KEY, N] = READ_FIELDS.keys()
const INCLUDE_USAGE = [Buffer.from('include_usage')]
/** Tool choices written as a word; one naming a function declines. */
const TOOL_CHOICE_NAMES = ['auto', 'none', 'required']
const TOOL_CHOICES = TOOL_CHOICE_NAMES.map((name) => Buffer.from(name))
const EFFORTS = REASONING_EFFORTS.map((name) => Buffer.from(name))

function readField (cursor: JsonCursor, field: number, read: ReadFields): boolean {
  switch (field) {
    case MODEL:
      read.model = name(cursor)
      return read.model !== undefined
    case MESSAGES:
      if (!cursor.take(0x5b)) return false
      do {
        if (!readMessage(cursor, read)) return false
      } while (cursor.take(0x2c))
      read.messages = true
      return cursor.take(0x5d)
    case TOOLS: {
      if (cursor.null()) return true
      if (cursor.next() !== 0x5b) return false
      const open = cursor.at
      const known = keptListEnd(cursor.bytes, open)
      const end = known !== -1 ? known : objectEnd(cursor.bytes, open)
      if (end === -1) return false
      read.tools = new RawJson(cursor.bytes.subarray(open, end))
      cursor.at = end
      return true
    }
    case TOOL_CHOICE: {
      if (cursor.null()) return true
      const choice = cursor.oneOf(TOOL_CHOICES)
      read.toolChoice = TOOL_CHOICE_NAMES[choice]
      return choice !== -1
    }
    case PARALLEL_TOOL_CALLS:
      read.parallelToolCalls = flag(cursor)
      return read.parallelToolCalls !== undefined
    case REASONING_EFFORT: {
      if (cursor.null()) return true
      const effort = cursor.oneOf(EFFORTS)
      read.effort = REASONING_EFFORTS[effort] ?? null
      return effort !== -1
    }
    case STREAM:
      read.stream = flag(cursor)
      return read.stream !== undefined
    case STREAM_OPTIONS:
      return cursor.null() || cursor.object(INCLUDE_USAGE, () => {
        const include = cursor.literal()
        read.includeUsage = include === 1
        return include !== undefined
      })
    case PROMPT_CACHE_KEY:
      if (cursor.null()) return true
      read.promptCacheKey = name(cursor) ?? null
      return read.promptCacheKey !== null
    case N: {
      // `1` as it is mostly written: any other count declines (the general reading refuses all but 1).
      if (cursor.null()) return true
      const one = cursor.next() === 0x31 ? cursor.at + 1 : -1
      return one !== -1 && cursor.number() && cursor.at === one
    }
    default:
      return cursor.string() || cursor.number() || cursor.literal() !== undefined
  }
}

const MESSAGE_FIELDS = ['role', 'content', 'name', 'tool_calls', 'tool_call_id'].map((name) => Buffer.from(name))
const [ROLE, CONTENT, NAME, TOOL_CALLS] = MESSAGE_FIELDS.keys()
const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'].map((name) => Buffer.from(name))
const [SYSTEM, DEVELOPER, USER, ASSISTANT, TOOL] = ROLES.keys()

/** One message: a system or developer text joins the instructions, the others are written as input items. */
function readMessage (cursor: JsonCursor, read: ReadFields): boolean {
  // Set by the callback below (`as`: so that TypeScript does not take them for their first values).
  let role = -1 as number
  let content = null as Json | null
  let calls = null as ToolCall[] | null
  let callId: string | undefined
  const readable = cursor.object(MESSAGE_FIELDS, (field) => {
    switch (field) {
      case ROLE:
        role = cursor.oneOf(ROLES)
        return role !== -1
      case CONTENT:
        if (cursor.null()) return true
        content = json(cursor) ?? null
        return content !== null
      case NAME:
        // A participant's name has no place in a Codex request (the general reading leaves it too).
        return cursor.null() || cursor.string()
      case TOOL_CALLS:
        if (cursor.null()) return true
        calls = readToolCalls(cursor)
        return calls !== null
      default:
        callId = quotedName(cursor)
        return callId !== undefined
    }
  })
  if (!readable) return false
  const input = read.input
  switch (role) {
    case SYSTEM:
    case DEVELOPER:
      read.instructions.push(content === null ? '' : typeof content === 'string' ? JSON.parse(content) as string : content)
      return true
    case USER:
      if (content === null) return false
      input.item(USER_TEXT, content)
      return true
    case ASSISTANT:
      if (content !== null && content !== EMPTY) input.item(ASSISTANT_TEXT, content)
      for (const call of calls ?? []) input.item(FUNCTION_CALL, call.id, call.name, call.args)
      return true
    case TOOL:
      if (callId === undefined) return false
      input.item(FUNCTION_CALL_OUTPUT, callId, content ?? EMPTY)
      return true
    default:
      return false
  }
}

/** A call's values as JSON text. */
interface ToolCall {
  id: string
  name: string
  args: Json
}

const CALL_FIELDS = ['id', 'type', 'function'].map((name) => Buffer.from(name))
const FUNCTION_FIELDS = ['name', 'arguments'].map((name) => Buffer.from(name))

/** An assistant's tool calls; null for anything this reader does not take. */
function readToolCalls (cursor: JsonCursor): ToolCall[] | null {
  if (!cursor.take(0x5b)) return null
  const calls: ToolCall[] = []
  do {
    let id: string | undefined
    let fn = null as { name: string, args: Json } | null
    const readable = cursor.object(CALL_FIELDS, (field) => {
      if (field === 0) {
        id = quotedName(cursor)
        return id !== undefined
      }
      // The general reading never looks at a call's type either.
      if (field === 1) return cursor.string()
      fn = readFunction(cursor)
      return fn !== null
    })
    if (!readable || id === undefined || fn === null) return null
    calls.push({ id, name: fn.name, args: fn.args })
  } while (cursor.take(0x2c))
  return cursor.take(0x5d) ? calls : null
}

function readFunction (cursor: JsonCursor): { name: string, args: Json } | null {
  let fnName: string | undefined
  // What the general reading sends for arguments that are not a string.
  let args: Json = NO_ARGUMENTS
  const readable = cursor.object(FUNCTION_FIELDS, (field) => {
    if (field === 0) {
      fnName = quotedName(cursor)
      return fnName !== undefined
    }
    if (cursor.null()) return true
    const value = json(cursor)
    if (value !== undefined) args = value
    return value !== undefined
  })
  return readable && fnName !== undefined ? { name: fnName, args } : null
}

/** A string the translation reads (a model, an id, a name): short and written without escapes, else undefined. */
function name (cursor: JsonCursor): string | undefined {
  return cursor.string() && !cursor.escaped && cursor.end - cursor.start < RAW_FROM ? cursor.text() : undefined
}

/**
 * A string value written into an item: its JSON text, as `jsonChunks` would write what
 * `parseKeepingRaw` gives (a short string decoded and written again, a long one the client's bytes).
 */
type Json = string | RawString

const EMPTY = '""'
const NO_ARGUMENTS = JSON.stringify('{}')

/** The string at the cursor as an item's value (undefined if there is none). */
function json (cursor: JsonCursor): Json | undefined {
  if (!cursor.string()) return undefined
  if (cursor.end - cursor.start >= RAW_FROM) return new RawString([cursor.bytes.subarray(cursor.start, cursor.end)])
  const written = cursor.bytes.toString('utf8', cursor.start - 1, cursor.end + 1)
  // Written without escapes, a string is already as JSON.stringify writes it.
  return cursor.escaped ? JSON.stringify(JSON.parse(written)) : written
}

/** `name` as JSON text. */
function quotedName (cursor: JsonCursor): string | undefined {
  const value = name(cursor)
  return value === undefined ? undefined : `"${value}"`
}

/** `true`, `false` or `null` (null); undefined for anything else. */
function flag (cursor: JsonCursor): boolean | null | undefined {
  const value = cursor.literal()
  return value === undefined ? undefined : value === -1 ? null : value === 1
}

/**
 * An item's JSON around its string values, from the builder that makes the item: `pieces` hold
 * the text before each value and after the last, `order` which of the builder's arguments each
 * value is.
 */
interface ItemTemplate {
  pieces: string[]
  order: number[]
}

function template (build: (...values: string[]) => ResponsesItem, count: number): ItemTemplate {
  const holes = Array.from({ length: count }, (_, i) => `\u0000hole${i}`)
  const json = JSON.stringify(build(...holes))
  const found = holes.map((hole, i) => ({ i, at: json.indexOf(JSON.stringify(hole)), length: JSON.stringify(hole).length })).sort((a, b) => a.at - b.at)
  const pieces: string[] = []
  let from = 0
  for (const hole of found) {
    pieces.push(json.slice(from, hole.at))
    from = hole.at + hole.length
  }
  pieces.push(json.slice(from))
  return { pieces, order: found.map((hole) => hole.i) }
}

const USER_TEXT = template((text) => userMessage([inputText(text)]), 1)
const ASSISTANT_TEXT = template((text) => assistantMessage(text), 1)
const FUNCTION_CALL = template((id, fnName, args) => functionCall(id, fnName, args), 3)
const FUNCTION_CALL_OUTPUT = template((id, output) => functionCallOutput(id, output), 2)

/**
 * The input list's JSON, written item by item as chunks: text, and the client's long strings as
 * its bytes. Pieces of text are pushed as they come: `jsonChunks` joins text next to text.
 */
class ItemWriter {
  private readonly chunks: Array<string | Buffer> = ['[']

  item (template: ItemTemplate, ...values: Json[]): void {
    const chunks = this.chunks
    if (chunks.length > 1) chunks.push(',')
    const { pieces, order } = template
    chunks.push(pieces[0]!)
    for (let i = 0; i < order.length; i++) {
      const value = values[order[i]!]!
      if (typeof value === 'string') chunks.push(value)
      else chunks.push('"', ...value.pieces, '"')
      chunks.push(pieces[i + 1]!)
    }
  }

  written (): WrittenJson {
    this.chunks.push(']')
    return new WrittenJson(this.chunks)
  }
}
