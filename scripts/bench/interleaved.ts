import { Client } from 'undici'
import { percentile } from './stats.js'

/** Where to send the bench's request, and with what. */
export interface Endpoint {
  url: string
  body: Buffer
  headers: Record<string, string>
}

/** Requests sent to one endpoint before the next one's turn. */
const BLOCK = 50

/**
 * The p50 latency at one connection of several endpoints (ms, to the end of each answer), measured
 * in turns: a block of requests to each in turn, over and over, for `seconds`, the order rotated
 * each round. This machine moves between a fast and a slow state within seconds (a direct call's
 * p50 at one connection 0.18–0.41 ms from one second to the next), so endpoints measured one after
 * the other in runs of seconds compare the machine's states more than the servers. Taken in turns
 * of a few milliseconds, every endpoint meets every state alike.
 *
 * A block, not single requests in turn: each server then serves back to back as it would in a
 * run of its own (caches warm); a server idle while the others take several turns pays for the
 * caches they evicted, the larger server more. The first requests of a block are that cold case,
 * a small share of 50.
 */
export async function interleavedP50 (endpoints: Endpoint[], o: { seconds: number }): Promise<number[]> {
  const clients = endpoints.map((endpoint) => new Client(new URL(endpoint.url).origin, { pipelining: 1 }))
  const paths = endpoints.map((endpoint) => new URL(endpoint.url).pathname)
  const latencies = endpoints.map(() => [] as number[])
  try {
    const end = performance.now() + o.seconds * 1000
    for (let round = 0; performance.now() < end; round++) {
      for (let turn = 0; turn < endpoints.length; turn++) {
        const at = (round + turn) % endpoints.length
        for (let i = 0; i < BLOCK; i++) latencies[at]!.push(await timeOne(clients[at]!, paths[at]!, endpoints[at]!))
      }
    }
  } finally {
    await Promise.all(clients.map(async (client) => { await client.close() }))
  }
  return latencies.map((samples) => percentile(samples, 50))
}

async function timeOne (client: Client, path: string, endpoint: Endpoint): Promise<number> {
  const started = performance.now()
  const answer = await client.request({ path, method: 'POST', headers: endpoint.headers, body: endpoint.body })
  for await (const _chunk of answer.body) { /* read to the end */ }
  if (answer.statusCode !== 200) throw new Error(`${endpoint.url}: status ${answer.statusCode}`)
  return performance.now() - started
}
