import type { Child } from './child.js'
import { interleavedP50, type Endpoint } from './interleaved.js'
import { drive, warmUp } from './load.js'

/** One way to load a server: where, with which body and headers. */
export interface LoadSide extends Endpoint {
  server: Child
}

export interface PairedCost {
  /** The pairs' ratios of b's CPU per answer ÷ a's: their median, lowest and highest. */
  cpu: Spread
  /** Median CPU µs per answer of each side. */
  a: number
  b: number
  pairs: number
  /** The same pairs' throughput: the median of b's req/s ÷ a's, and its range. */
  rps: Spread
  /** With `latencyOver`: each side's added p50 at one connection, taken in turns with that endpoint. */
  addedP50?: AddedLatency
}

export interface Spread {
  median: number
  low: number
  high: number
}

export interface AddedLatency {
  /** The median of b's added p50 ÷ a's over the measurements, and its range. */
  ratio: Spread
  /** Median added p50 of each side, in ms. */
  a: number
  b: number
  measurements: number
}

/** How long each pair of processes is measured at one connection, with `latencyOver`. */
const LATENCY_SECONDS = 5

/**
 * What b costs against a, as CPU per answer at 32 connections, measured in pairs: a short run of
 * each, back to back, in alternating order, and the median of the pairs' ratios. On a shared
 * machine the CPU a run takes swings by tens of percent as the neighbours come and go; two runs a
 * second apart meet the same neighbours, so their ratio keeps what the code costs and loses most
 * of what the machine adds. Best-of-N per side instead compares two lucky moments.
 *
 * Measured across processes: `start` makes fresh servers (one serving both sides, or one each)
 * `incarnations` times, and each time they are measured in `pairs` pairs. Two processes of one
 * program differ by up to 15 % in CPU per answer on this kind of machine, and keep their
 * difference for as long as they live (where the JIT put the hot code, which CPU the scheduler
 * keeps them on): one process measures itself as much as the program.
 *
 * The same runs give the ratio of the two sides' throughput. With `latencyOver` (the direct call),
 * each pair of processes is also measured at one connection, taken in turns with it
 * (interleaved.ts), for each side's p50 over the direct call's.
 */
export async function pairedProcesses (start: () => Promise<{ a: LoadSide, b: LoadSide }>, o: { incarnations: number, pairs: number, seconds: number, latencyOver?: Endpoint }): Promise<PairedCost> {
  const ratios: number[] = []
  const costs: { a: number[], b: number[] } = { a: [], b: [] }
  const rpsRatios: number[] = []
  const added: { a: number[], b: number[] } = { a: [], b: [] }
  for (let i = 0; i < o.incarnations; i++) {
    const { a, b } = await start()
    try {
      for (const side of [a, b]) await warmUp(side.url, side)
      await runPairs(a, b, o, ratios, costs, rpsRatios)
      if (o.latencyOver !== undefined) {
        const [direct, pa, pb] = await interleavedP50([o.latencyOver, a, b], { seconds: LATENCY_SECONDS })
        added.a.push(pa! - direct!)
        added.b.push(pb! - direct!)
      }
    } finally {
      await Promise.all([...new Set([a.server, b.server])].map(async (server) => { await server.stop() }))
    }
  }
  return { ...summary(ratios, costs), rps: spread(rpsRatios), ...o.latencyOver === undefined ? {} : { addedP50: addedLatency(added) } }
}

async function runPairs (a: LoadSide, b: LoadSide, o: { pairs: number, seconds: number }, ratios: number[], costs: { a: number[], b: number[] }, rpsRatios: number[]): Promise<void> {
  for (let pair = 0; pair < o.pairs; pair++) {
    const order = pair % 2 === 0 ? ['a', 'b'] as const : ['b', 'a'] as const
    const cost: Record<'a' | 'b', number> = { a: 0, b: 0 }
    const rps: Record<'a' | 'b', number> = { a: 0, b: 0 }
    for (const side of order) {
      const target = side === 'a' ? a : b
      const before = await target.server.cpu()
      const run = await drive(target.url, { connections: 32, seconds: o.seconds, body: target.body, headers: target.headers })
      if (run.failed > 0) throw new Error(`${target.url}: ${run.failed} failed answers`)
      cost[side] = (await target.server.cpu() - before) * 1000 / run.requests
      costs[side].push(cost[side])
      rps[side] = run.rps
    }
    ratios.push(cost.b / cost.a)
    rpsRatios.push(rps.b / rps.a)
  }
}

function summary (ratios: number[], costs: { a: number[], b: number[] }): Omit<PairedCost, 'rps'> {
  return { cpu: spread(ratios), a: median(costs.a), b: median(costs.b), pairs: ratios.length }
}

/** Added latency, each measurement's two sides compared with each other before the medians are taken. */
function addedLatency (added: { a: number[], b: number[] }): AddedLatency {
  return { ratio: spread(added.b.map((b, i) => b / added.a[i]!)), a: median(added.a), b: median(added.b), measurements: added.a.length }
}

export function spread (values: number[]): Spread {
  return { median: median(values), low: Math.min(...values), high: Math.max(...values) }
}

export function median (values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
