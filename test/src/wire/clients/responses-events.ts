/** Responses event streams written by hand for the golden tests: small, readable, with the awkward cases. */
export function sse (...events: Array<Record<string, unknown>>): string {
  return events.map((event) => `event: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`).join('')
}

export const created = { type: 'response.created', response: { id: 'resp_abc', model: 'gpt-5-codex', created_at: 1700000000 } }
export const text = (delta: string, index = 1): Record<string, unknown> => ({ type: 'response.output_text.delta', output_index: index, delta })
export const callAdded = (index: number, callId: string, name: string): Record<string, unknown> => ({ type: 'response.output_item.added', output_index: index, item: { type: 'function_call', id: `fc_${index}`, call_id: callId, name, arguments: '' } })
export const args = (index: number, delta: string): Record<string, unknown> => ({ type: 'response.function_call_arguments.delta', output_index: index, delta })
export const callDone = (index: number, callId: string, name: string, full: string): Record<string, unknown> => ({ type: 'response.output_item.done', output_index: index, item: { type: 'function_call', id: `fc_${index}`, call_id: callId, name, arguments: full } })
export const usage = { input_tokens: 10, input_tokens_details: { cached_tokens: 4 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 3 }, total_tokens: 17 }
export const completed = { type: 'response.completed', response: { id: 'resp_abc', usage } }
export const failed = { type: 'response.failed', response: { id: 'resp_abc', error: { code: 'server_error', message: 'it broke' } } }

/** SSE text as `{event, data}` pairs, `data` parsed unless it is `[DONE]`. */
export function parseSse (text: string): Array<{ event: string | null, data: any }> {
  return text.split('\n\n').filter((block) => block !== '').map((block) => {
    const event = /^event: (.*)$/m.exec(block)?.[1] ?? null
    const data = /^data: (.*)$/m.exec(block)![1]!
    return { event, data: data === '[DONE]' ? data : JSON.parse(data) }
  })
}
