import autocannon from 'autocannon'
import { percentile } from './stats.js'

export interface LoadResult {
  /** Successful answers. */
  requests: number
  rps: number
  /** Latencies of successful answers, in ms, to the last byte of the stream. */
  p50: number
  p99: number
  failed: number
}

/**
 * Drives one target with autocannon. Latencies are taken from its per-response times (float ms):
 * its own histogram keeps whole milliseconds, too coarse for a loopback proxy.
 */
export async function drive (url: string, o: { connections: number, seconds: number, body: Buffer, headers: Record<string, string> }): Promise<LoadResult> {
  const latencies: number[] = []
  const instance = autocannon({ url, connections: o.connections, duration: o.seconds, method: 'POST', headers: o.headers, body: o.body, pipelining: 1 })
  instance.on('response', (_client, status, _bytes, ms) => {
    if (status >= 200 && status < 300) latencies.push(ms)
  })
  const started = performance.now()
  const result = await instance
  const seconds = (performance.now() - started) / 1000
  return {
    requests: latencies.length,
    rps: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    failed: result.errors + result.timeouts + result.non2xx
  }
}

/**
 * Brings a server to its steady state at 32 connections before it is measured. In two parts: when
 * a load ends, the load generator drops the requests still in flight, and a server's first such
 * ending changes the shapes of objects on its close and abort paths (sockets, streams, requests),
 * which throws away the optimized code of much of its hot path (`--trace-deopt`: 60–100 functions
 * at once, undici's parser and writer, the streams, the proxy's own steps). The next second or two
 * of load re-optimizes it all (about 110 compilations; the app's CPU per answer 201 against 155–160
 * once done), so it happens in the second part rather than in the measured run. A server in use
 * has long since seen its first dropped request.
 */
export async function warmUp (url: string, o: { body: Buffer, headers: Record<string, string> }): Promise<void> {
  await drive(url, { connections: 32, seconds: 2, body: o.body, headers: o.headers })
  await drive(url, { connections: 32, seconds: 3, body: o.body, headers: o.headers })
}
