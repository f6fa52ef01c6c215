import { eventObject, type WatchedEvent } from './marked-event-watch.js'

/** A passing SSE stream's `response.failed` event, for a `MarkedEventWatch`: `onFailure` gets its error. */
export function watchedFailure (onFailure: (error: Record<string, unknown>) => void): WatchedEvent {
  return {
    mark: 'response.failed',
    onEvent: (eventName, data) => {
      const payload = eventObject(data)
      if (payload === null) return false
      if (eventName !== 'response.failed' && payload.type !== 'response.failed') return false
      const error = (payload.response as { error?: unknown } | undefined)?.error
      if (error === null || typeof error !== 'object') return false
      onFailure(error as Record<string, unknown>)
      return true
    }
  }
}
