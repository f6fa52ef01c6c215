import type { Stack } from './stack.js'

export interface CallResult { status: number, json: any, text: string, headers: Headers }

/** One JSON call to the app, with the admin token when the stack has one. */
export async function apiCall (stack: Stack, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<CallResult> {
  const all: Record<string, string> = { ...(stack.config.adminToken === null ? {} : { authorization: `Bearer ${stack.config.adminToken}` }), ...headers }
  if (body !== undefined) all['content-type'] = 'application/json'
  const response = await fetch(`${stack.url}${path}`, { method, headers: all, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) })
  const text = await response.text()
  let json: any = null
  try { json = JSON.parse(text) } catch { /* not JSON */ }
  return { status: response.status, json, text, headers: response.headers }
}

/** The `usage` of an SSE answer's `response.completed` event, as the backend sent it. */
export function completedUsage (sse: string): { input: number, cachedInput: number, output: number, reasoning: number, model: string } {
  for (const block of sse.split('\n\n')) {
    const data = block.split('\n').find((line) => line.startsWith('data: '))
    if (data === undefined) continue
    const event = JSON.parse(data.slice(6)) as { type: string, response?: { model: string, usage: any } }
    if (event.type === 'response.completed' && event.response !== undefined) {
      const u = event.response.usage
      return { input: u.input_tokens, cachedInput: u.input_tokens_details.cached_tokens, output: u.output_tokens, reasoning: u.output_tokens_details.reasoning_tokens, model: event.response.model }
    }
  }
  throw new Error('no response.completed event in the stream')
}
