/** The items of an SSE answer's `response.output_item.done` events, in order. */
export function doneItems (sse: string): Array<Record<string, unknown>> {
  const items: Array<Record<string, unknown>> = []
  for (const block of sse.split('\n\n')) {
    const data = block.split('\n').find((line) => line.startsWith('data: '))
    if (data === undefined) continue
    const event = JSON.parse(data.slice(6)) as { type: string, item?: Record<string, unknown> }
    if (event.type === 'response.output_item.done' && event.item !== undefined) items.push(event.item)
  }
  return items
}

/** The first done item of that type; throws when there is none. */
export function doneItemOf (sse: string, type: string): Record<string, unknown> {
  const item = doneItems(sse).find((candidate) => candidate.type === type)
  if (item === undefined) throw new Error(`no ${type} item in the stream`)
  return item
}
