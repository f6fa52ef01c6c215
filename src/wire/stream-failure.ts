import { eventObject, MarkedEventWatch } from './marked-event-watch.js'

/** Watches a passing SSE stream for a `response.failed` event (a byte search until one shows up). */
export class StreamFailureWatch {
  private readonly watch: MarkedEventWatch

  constructor (onFailure: (error: Record<string, unknown>) => void) {
    this.watch = new MarkedEventWatch('response.failed', (eventName, data) => {
      const payload = eventObject(data)
      if (payload === null) return false
      if (eventName !== 'response.failed' && payload.type !== 'response.failed') return false
      const error = (payload.response as { error?: unknown } | undefined)?.error
      if (error === null || typeof error !== 'object') return false
      onFailure(error as Record<string, unknown>)
      return true
    })
  }

  push (chunk: Buffer): void {
    this.watch.push(chunk)
  }
}
