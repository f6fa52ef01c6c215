import { Pool } from 'undici'
import type { Child } from './child.js'
import { codexRequestHeaders, readStamp } from './codex-turn.js'
import { percentile, sleep } from './stats.js'

export interface Lateness {
  events: number
  /** How late events reached the client after the upstream wrote them, in µs. */
  p50: number
  p99: number
  max: number
}

export interface StreamsResult {
  /** Streams answered 200 and read to the end (none when they are let go once measured). */
  completed: number
  /** The most streams open at once, as seen by the client, and how long after the first request that was (ms). */
  maxOpen: number
  msToMostOpen: number
  /** Every event, including those of the ramp (while 40 KB bodies were still being sent). */
  all: Lateness
  /** Events written while every stream was open: the steady state the figure is about. */
  allOpen: Lateness
  /** The target's RSS when all streams were open, and the highest seen during the run. */
  rssAllOpen: number
  rssPeak: number
  /** The target's own account of its memory when all streams were open. */
  memoryAllOpen: NodeJS.MemoryUsage | null
}

/** Turns waiting for their answer's headers at once, at most: well under the listen queues' 4,096. */
const MAX_STARTING = 1000

function lateness (samples: number[]): Lateness {
  // percentile() sorts: the last sample is the largest (Math.max(...samples) overflows the stack at 10,000 streams).
  return { events: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), max: samples.length === 0 ? Number.NaN : samples[samples.length - 1]! }
}

/**
 * Opens `streams` slow turns through a target at once (a few per millisecond, so the listen backlog
 * is not the test) and holds them open: the upstream writes `events` events `intervalMs` apart,
 * each stamped with its send time, and the client notes when each one arrives. At most
 * MAX_STARTING turns wait for their answer's headers at a time: a slow machine that accepts
 * connections more slowly than they come would otherwise overflow the listen queues, and a dropped
 * connection is tried again only seconds later (TCP's SYN backoff), some after the first streams
 * have ended. With `noteLateness: false` the events are read but not timed (a run for memory only).
 * With `letGoOnceMeasured` the client closes every stream as soon as each request has its answer
 * and the target's memory is taken: the run measures all streams open at once however slowly a
 * busy machine opens them, and `events` only bounds a run whose streams never all open.
 */
export async function slowStreams (base: string, o: { streams: number, events: number, intervalMs: number, body: Buffer, target: Child | null, noteLateness?: boolean, letGoOnceMeasured?: boolean }): Promise<StreamsResult> {
  const url = new URL(base)
  const path = `${url.pathname}/responses?events=${o.events}&interval_ms=${o.intervalMs}`
  const client = new Pool(url.origin, { connections: o.streams * 2 })
  const samples: Array<{ sent: bigint, late: number }> = []
  let open = 0
  let maxOpen = 0
  let maxOpenAt = 0
  const startedAt = performance.now()
  let completed = 0
  let allOpenAt: bigint | null = null
  let firstDoneAt: bigint | null = null
  let rssAllOpen = 0
  let rssPeak = 0
  let memoryAllOpen: NodeJS.MemoryUsage | null = null
  const sampler = setInterval(() => {
    void o.target?.rss().then((rss) => { rssPeak = Math.max(rssPeak, rss) })
  }, 100)

  let starting = 0
  let started: (() => void) | null = null
  // Requests that have their answer's status (or failed): once all have, no more streams will open.
  let answered = 0
  let everyAnswered!: () => void
  const allAnswered = new Promise<void>((resolve) => { everyAnswered = resolve })
  const noteAnswered = (): void => { if (++answered === o.streams) everyAnswered() }
  let measured: Promise<void> = Promise.resolve()
  const measureAllOpen = async (): Promise<void> => {
    if (o.target !== null) [rssAllOpen, memoryAllOpen] = await Promise.all([o.target.rss(), o.target.memory()])
  }
  const one = async (): Promise<void> => {
    starting++
    const answer = await client.request({ path, method: 'POST', headers: codexRequestHeaders(), body: o.body }).finally(() => {
      starting--
      started?.()
    }).catch((error: unknown) => {
      noteAnswered()
      throw error
    })
    if (answer.statusCode !== 200) {
      noteAnswered()
      await answer.body.dump()
      return
    }
    open++
    if (open > maxOpen) {
      maxOpen = open
      maxOpenAt = performance.now()
    }
    if (open === o.streams) {
      allOpenAt = process.hrtime.bigint()
      measured = measureAllOpen()
    }
    noteAnswered()
    let pending = ''
    await new Promise<void>((resolve, reject) => {
      answer.body.on('data', (chunk: Buffer) => {
        if (o.noteLateness === false) return // read, not timed
        const arrived = process.hrtime.bigint()
        pending += chunk.toString('utf8')
        for (let end = pending.indexOf('\n\n'); end !== -1; end = pending.indexOf('\n\n')) {
          const sent = readStamp(pending.slice(0, end))
          if (sent !== null) samples.push({ sent, late: Number(arrived - sent) / 1000 })
          pending = pending.slice(end + 2)
        }
      })
      answer.body.once('end', resolve)
      answer.body.once('error', reject)
    })
    firstDoneAt ??= process.hrtime.bigint()
    open--
    completed++
  }

  const running: Array<Promise<void>> = []
  for (let i = 0; i < o.streams; i++) {
    running.push(one().catch(() => {}))
    if (i % 10 === 9) await sleep(5)
    while (starting >= MAX_STARTING) await new Promise<void>((resolve) => { started = resolve })
  }
  if (o.letGoOnceMeasured === true) {
    await allAnswered
    await measured
    await client.destroy() // every stream still open ends here, its read with an error
    await Promise.all(running)
  } else {
    await Promise.all(running)
    await measured
    await client.close()
  }
  clearInterval(sampler)
  const from = allOpenAt ?? 0n
  const to = firstDoneAt ?? 0n
  return {
    completed,
    maxOpen,
    msToMostOpen: maxOpenAt - startedAt,
    all: lateness(samples.map((s) => s.late)),
    allOpen: lateness(samples.filter((s) => s.sent >= from && s.sent < to).map((s) => s.late)),
    rssAllOpen,
    rssPeak,
    memoryAllOpen
  }
}
