import type { Child } from './child.js'
import { drive, warmUp } from './load.js'

/** One way to load a server: where, with which body and headers. */
export interface LoadSide {
  server: Child
  url: string
  body: Buffer
  headers: Record<string, string>
}

export interface PairedCost {
  /** The median of the pairs' ratios (b's CPU per answer ÷ a's). */
  ratio: number
  /** The lowest and highest ratio of a pair. */
  low: number
  high: number
  /** Median CPU µs per answer of each side. */
  a: number
  b: number
  pairs: number
}

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
 */
export async function pairedProcesses (start: () => Promise<{ a: LoadSide, b: LoadSide }>, o: { incarnations: number, pairs: number, seconds: number }): Promise<PairedCost> {
  const ratios: number[] = []
  const costs: { a: number[], b: number[] } = { a: [], b: [] }
  for (let i = 0; i < o.incarnations; i++) {
    const { a, b } = await start()
    try {
      for (const side of [a, b]) await warmUp(side.url, side)
      await runPairs(a, b, o, ratios, costs)
    } finally {
      await Promise.all([...new Set([a.server, b.server])].map(async (server) => { await server.stop() }))
    }
  }
  return summary(ratios, costs)
}

async function runPairs (a: LoadSide, b: LoadSide, o: { pairs: number, seconds: number }, ratios: number[], costs: { a: number[], b: number[] }): Promise<void> {
  for (let pair = 0; pair < o.pairs; pair++) {
    const order = pair % 2 === 0 ? ['a', 'b'] as const : ['b', 'a'] as const
    const cost: Record<'a' | 'b', number> = { a: 0, b: 0 }
    for (const side of order) {
      const target = side === 'a' ? a : b
      const before = await target.server.cpu()
      const run = await drive(target.url, { connections: 32, seconds: o.seconds, body: target.body, headers: target.headers })
      if (run.failed > 0) throw new Error(`${target.url}: ${run.failed} failed answers`)
      cost[side] = (await target.server.cpu() - before) * 1000 / run.requests
      costs[side].push(cost[side])
    }
    ratios.push(cost.b / cost.a)
  }
}

function summary (ratios: number[], costs: { a: number[], b: number[] }): PairedCost {
  return { ratio: median(ratios), low: Math.min(...ratios), high: Math.max(...ratios), a: median(costs.a), b: median(costs.b), pairs: ratios.length }
}

function median (values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
