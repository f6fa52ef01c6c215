import type { Child } from './child.js'
import { concurrentConversations, type ConcurrentResult } from './conversation.js'
import { median, spread, type Spread } from './paired.js'

/** Where a conversation is sent, the process whose CPU is counted, and any headers besides Codex's. */
export interface ConversationSide {
  base: string
  server: Child
  headers?: Record<string, string>
}

export interface PairedConversations {
  /** Per side, the medians over every round of its p50, p99 and CPU per turn (turns and bytes of one run). */
  direct: ConcurrentResult
  a: ConcurrentResult
  b: ConcurrentResult
  /** Each side's added p50 over the direct call's of the same round: the medians, in ms. */
  addedA: number
  addedB: number
  /** b ÷ a in each round: CPU per turn, and added p50. */
  cpu: Spread
  added: Spread
  rounds: number
}

/**
 * Concurrent conversations measured in pairs, as pairedProcesses measures small costs: `start`
 * makes a fresh a and b `incarnations` times; each pair is warmed up, then measured in `rounds`
 * rounds of the direct call, a and b back to back (the order reversed every other round), and each
 * round gives b's ratios to a. A round's three runs (a few seconds) meet the same machine, where
 * the best of each side over the whole phase compares two lucky moments of two processes that may
 * differ by 15 % for as long as they live.
 */
export async function pairedConversations (direct: ConversationSide, start: () => Promise<{ a: ConversationSide, b: ConversationSide }>, bodies: Buffer[], o: { conversations: number, incarnations: number, rounds: number }): Promise<PairedConversations> {
  const runs: Record<'direct' | 'a' | 'b', ConcurrentResult[]> = { direct: [], a: [], b: [] }
  const added: Record<'a' | 'b', number[]> = { a: [], b: [] }
  const cpuRatios: number[] = []
  const addedRatios: number[] = []
  const measure = (side: ConversationSide, some: Buffer[] = bodies): Promise<ConcurrentResult> => concurrentConversations(side.base, side.server, some, o.conversations, side.headers)
  for (let i = 0; i < o.incarnations; i++) {
    const { a, b } = await start()
    try {
      for (const side of [a, b]) await measure(side, bodies.slice(0, 3)) // warm-up
      for (let round = 0; round < o.rounds; round++) {
        const order = (i * o.rounds + round) % 2 === 0 ? ['direct', 'a', 'b'] as const : ['b', 'a', 'direct'] as const
        const r: Partial<Record<'direct' | 'a' | 'b', ConcurrentResult>> = {}
        for (const name of order) {
          r[name] = await measure(name === 'direct' ? direct : name === 'a' ? a : b)
          runs[name].push(r[name])
        }
        const addedA = r.a!.p50 - r.direct!.p50
        const addedB = r.b!.p50 - r.direct!.p50
        added.a.push(addedA)
        added.b.push(addedB)
        cpuRatios.push(r.b!.cpuPerTurn / r.a!.cpuPerTurn)
        addedRatios.push(addedB / addedA)
      }
    } finally {
      await Promise.all([a.server.stop(), b.server.stop()])
    }
  }
  return {
    direct: medians(runs.direct),
    a: medians(runs.a),
    b: medians(runs.b),
    addedA: median(added.a),
    addedB: median(added.b),
    cpu: spread(cpuRatios),
    added: spread(addedRatios),
    rounds: cpuRatios.length
  }
}

function medians (runs: ConcurrentResult[]): ConcurrentResult {
  return { ...runs[0]!, p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)), cpuPerTurn: median(runs.map((r) => r.cpuPerTurn)) }
}
