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
