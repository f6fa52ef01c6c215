/**
 * How a passed-on answer ended. Only an upstream that broke (its stream errored) blames the
 * account; an answer not fully written when the client's connection closed means the client left,
 * even when the upstream had already sent everything — clients drop connections at the end of a
 * load run, and that is nobody's fault.
 */
export type StreamEnd = 'complete' | 'client_left' | 'upstream_broke'

export function streamEnd (upstreamError: Error | null, written: boolean): StreamEnd {
  if (upstreamError !== null) return 'upstream_broke'
  return written ? 'complete' : 'client_left'
}
