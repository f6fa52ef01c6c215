import { Pool } from 'undici'
import { codexRequestHeaders, readStamp } from './codex-turn.js'
import { percentile, sleep } from './stats.js'

export interface StreamsResult {
  /** Streams answered 200 and read to the end. */
  completed: number
  /** The most streams open at once, as seen by the client. */
  maxOpen: number
  /** Events received, out of streams × events. */
  events: number
  /** How late events reached the client after the upstream wrote them, in µs. */
  lateP50: number
  lateP99: number
  lateMax: number
  /** The target's RSS when all streams were open, and the highest seen during the run. */
  rssAllOpen: number
  rssPeak: number
}

/**
 * Opens `streams` slow turns through a target at once (a few per millisecond, so the listen backlog
 * is not the test) and holds them open: the upstream writes `events` events `intervalMs` apart,
 * each stamped with its send time, and the client notes when each one arrives.
 */
export async function slowStreams (base: string, o: { streams: number, events: number, intervalMs: number, body: Buffer, rss: () => Promise<number> }): Promise<StreamsResult> {
  const url = new URL(base)
  const path = `${url.pathname}/responses?events=${o.events}&interval_ms=${o.intervalMs}`
  const client = new Pool(url.origin, { connections: o.streams * 2 })
  const lateness: number[] = []
  let open = 0
  let maxOpen = 0
  let completed = 0
  let rssAllOpen = 0
  let rssPeak = 0
  const sampler = setInterval(() => {
    void o.rss().then((rss) => { rssPeak = Math.max(rssPeak, rss) })
  }, 100)

  const one = async (): Promise<void> => {
    const answer = await client.request({ path, method: 'POST', headers: codexRequestHeaders(), body: o.body })
    if (answer.statusCode !== 200) {
      await answer.body.dump()
      return
    }
    open++
    maxOpen = Math.max(maxOpen, open)
    if (open === o.streams) rssAllOpen = await o.rss()
    let pending = ''
    await new Promise<void>((resolve, reject) => {
      answer.body.on('data', (chunk: Buffer) => {
        const arrived = process.hrtime.bigint()
        pending += chunk.toString('utf8')
        for (let end = pending.indexOf('\n\n'); end !== -1; end = pending.indexOf('\n\n')) {
          const sent = readStamp(pending.slice(0, end))
          if (sent !== null) lateness.push(Number(arrived - sent) / 1000)
          pending = pending.slice(end + 2)
        }
      })
      answer.body.once('end', resolve)
      answer.body.once('error', reject)
    })
    open--
    completed++
  }

  const running: Array<Promise<void>> = []
  for (let i = 0; i < o.streams; i++) {
    running.push(one().catch(() => {}))
    if (i % 10 === 9) await sleep(5)
  }
  await Promise.all(running)
  clearInterval(sampler)
  await client.close()
  return {
    completed,
    maxOpen,
    events: lateness.length,
    lateP50: percentile(lateness, 50),
    lateP99: percentile(lateness, 99),
    lateMax: lateness.length === 0 ? Number.NaN : Math.max(...lateness),
    rssAllOpen,
    rssPeak
  }
}
