#!/usr/bin/env node
/**
 * `npm run bench`: the proxy against the floor (a bare Node pass-through; also as a Fastify route, to
 * show what the framework alone costs), nginx when it is on the
 * PATH, and a direct call to the upstream; 1,000 slow streams through the app (its RSS, and how
 * late each event arrives); the pool's choice of account with 10 and 10,000 accounts; a streamed
 * chat completion (translated) against the same turn over `/v1/responses`. The app also
 * runs with a smaller V8 young generation, the one setting that moves its memory and GC pauses.
 *
 * A 20-turn conversation with a 2 MB history, over HTTP and over WebSocket, direct and through the pool:
 * the request bytes the upstream receives per turn, and the time per turn.
 *
 * 16 such conversations at once over HTTP, their history growing to 2 MB over 20 turns, direct,
 * through the floor and through the app, in fresh pairs of the floor and the app: CPU and added
 * latency per turn.
 *
 * Options: --seconds N (each load run, default 5), --only load,streams,pick,blobs,conversation,clients,
 * --streams N (the lateness runs, default 1000), --many-streams N (the app's memory run, default 10000;
 * 0: none), --targets floor,floor-fastify,app-bare,app,app-redis,app-keys,app-info,app-young,nginx
 * (the load targets besides the direct call; floor-fastify: the floor's pass-through as a Fastify
 * route; app-bare: no client keys, no usage ledger; app: the ledger, as `serve` runs by
 * default; app-redis: the same on the shared Redis store, with a redis-server of its own on a free port;
 * app-keys: the ledger and a client key with a daily limit; app-info: all that and logs at info),
 * --profile DIR (the app children write V8 CPU profiles there: open them in Chrome DevTools).
 */
import { readFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { startChild, type Child } from './bench/child.js'
import { startAppOnRedis } from './bench/app-redis.js'
import { launchRedis } from '../test/support/redis-server.js'
import { chatRequestBody, codexRequestBody, codexRequestHeaders } from './bench/codex-turn.js'
import { growingConversation, httpConversation, wsConversation, type ConversationResult } from './bench/conversation.js'
import { pairedConversations } from './bench/conversation-pairs.js'
import { drive, warmUp, type LoadResult } from './bench/load.js'
import { findNginx, startNginx } from './bench/nginx.js'
import { pickBenchmark } from './bench/pick.js'
import { BENCH_CLIENT_KEY } from './bench/bench-account.js'
import { blobBenchmark } from './bench/blob-checks.js'
import { slowStreams, type StreamsResult } from './bench/slow-streams.js'
import { pairedProcesses, type LoadSide, type PairedCost, type Spread } from './bench/paired.js'
import { mib, sleep, table } from './bench/stats.js'
import { SERVER_NODE_FLAGS } from '../src/server-flags.js'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    only: { type: 'string', default: 'load,streams,pick,blobs,conversation,clients' },
    streams: { type: 'string', default: '1000' },
    'many-streams': { type: 'string', default: '10000' },
    targets: { type: 'string', default: 'floor,floor-fastify,app-bare,app,app-redis,app-keys,app-info,nginx' },
    profile: { type: 'string' }
  }
})
const seconds = Number(args.seconds)
const phases = new Set(args.only.split(','))
const streamCount = Number(args.streams)
const manyStreams = Number(args['many-streams'])
const loadTargets = new Set(args.targets.split(','))
// The app runs with the flags `npm start` and the systemd unit give it.
const appExecArgv = [...SERVER_NODE_FLAGS, ...args.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', args.profile]]
/** Long enough that most events flow after the ramp (1,000 requests with 40 KB bodies take about a second). */
const STREAM_EVENTS = 16
const STREAM_INTERVAL_MS = 500
/** Rounds of slow streams through each server, alternated; each server's best counts for target 4. */
const STREAM_ROUNDS = 2
/** The paired measurements of small costs (see paired.ts): runs this long. */
const PAIR_SECONDS = 1.5
/**
 * This many fresh servers (or pairs of them), each measured in this many pairs of runs. What a
 * process costs per answer is set early in its life and kept (up to 15 % apart between two of one
 * program), so a process pair's runs move together: the number of process pairs, more than of runs,
 * is what narrows the median.
 */
const INCARNATIONS = 6
const PAIRS_EACH = 2
/**
 * The keys' and the ledger's cost, and the method's noise beside it, in twice as many: the target
 * (≤ 5 %) is a few microseconds, about what 12 pairs resolve (the noise row's median of 12 read
 * 1.00–1.06 over six full runs).
 */
const KEYS_INCARNATIONS = 12
/** The Codex-shaped load's fresh pairs of the floor and the app, and rounds each (a round is a few seconds). */
const CONVERSATION_INCARNATIONS = 4
const CONVERSATION_ROUNDS = 2

/** Node's young generation capped at 2 × 4 MB instead of 2 × 16 MB (`NODE_OPTIONS=--max-semi-space-size=4`). */
const SMALL_YOUNG_GENERATION = ['--max-semi-space-size=4']
const APP_BARE = 'app, bare'
const APP_KEYS = 'app, keys'
const APP_ALL = 'app, all on'
const APP_REDIS = 'app, redis'
const FLOOR_FASTIFY = 'floor on Fastify'

const script = (name: string): URL => new URL(`./bench/${name}.js`, import.meta.url)

interface Target {
  name: string
  /** Starts the target's process (null: the direct call, to the upstream). */
  start: (() => Promise<Child>) | null
  /** Headers sent besides the Codex ones (a client key). */
  extraHeaders?: Record<string, string>
}

interface Verdict {
  target: string
  met: boolean
  figures: string
}

const body = codexRequestBody()
const codexHeaders = codexRequestHeaders()
const verdicts: Verdict[] = []
const ms = (value: number): string => value.toFixed(3)
const range = (spread: Spread): string => `${spread.low.toFixed(2)}–${spread.high.toFixed(2)}`

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
console.log(`request body ${(body.length / 1024).toFixed(1)} KB; answer: 8 SSE events`)

const upstream = await startChild(script('upstream-server'), [])
const upstreamBase = `http://127.0.0.1:${upstream.port}/backend-api/codex`
const proxied = (child: Child): string => `http://127.0.0.1:${child.port}/v1`

try {
  if (phases.has('load')) await loadPhase()
  if (phases.has('streams')) await streamsPhase()
  if (phases.has('pick')) await pickPhase()
  if (phases.has('blobs')) blobsPhase()
  if (phases.has('conversation')) await conversationPhase()
  if (phases.has('clients')) await clientsPhase()
} finally {
  await upstream.stop()
}

if (verdicts.length > 0) {
  console.log('\nTargets')
  console.log(table([['target', 'met', 'figures'], ...verdicts.map((v) => [v.target, v.met ? 'yes' : 'NO', v.figures])]))
}

async function loadPhase (): Promise<void> {
  const targets: Target[] = [{ name: 'direct', start: null }]
  const add = (name: string, start: () => Promise<Child>, extraHeaders?: Record<string, string>): void => { targets.push({ name, start, extraHeaders }) }
  const appWith = (args: string[], execArgv = appExecArgv) => async () => await startChild(script('app-server'), [upstreamBase, ...args], execArgv)
  if (loadTargets.has('floor')) add('floor', async () => await startChild(script('floor-server'), [upstreamBase]))
  if (loadTargets.has('floor-fastify')) add(FLOOR_FASTIFY, async () => await startChild(script('floor-fastify-server'), [upstreamBase]))
  const keyHeader = { authorization: `Bearer ${BENCH_CLIENT_KEY}` }
  if (loadTargets.has('app-bare')) add(APP_BARE, appWith(['warn', 'no-ledger']))
  if (loadTargets.has('app')) add('app', appWith(['warn']))
  if (loadTargets.has('app-redis')) add(APP_REDIS, async () => await startAppOnRedis(upstreamBase, appExecArgv))
  if (loadTargets.has('app-keys')) add(APP_KEYS, appWith(['warn', 'keys']), keyHeader)
  if (loadTargets.has('app-info')) add(APP_ALL, appWith(['info', 'keys']), keyHeader)
  if (loadTargets.has('app-young')) add('app, young 4MB', appWith(['warn'], [...SMALL_YOUNG_GENERATION, ...appExecArgv]))
  const nginx = loadTargets.has('nginx') ? await findNginx() : null
  if (nginx !== null) add('nginx', async () => await startNginx(nginx, new URL(upstreamBase)))
  else if (loadTargets.has('nginx')) console.log('nginx is not on the PATH: left out')

  const runs = new Map<string, Array<{ many: LoadResult, one: LoadResult, cpuPerRequest: number }>>()
  for (let round = 1; round <= 2; round++) {
    // The second round goes the other way: a target is not always measured after the same one.
    // Each round in fresh processes: what a process costs per answer is set early in its life and
    // kept (up to 15 % apart between two of one program), so the best of two rounds is the best
    // of two processes.
    for (const target of round === 1 ? targets : [...targets].reverse()) {
      const child = await target.start?.() ?? null
      try {
        const url = `${child === null ? upstreamBase : proxied(child)}/responses`
        const headers = { ...codexHeaders, ...target.extraHeaders }
        await warmUp(url, { body, headers })
        // The target's own CPU per answer (the upstream's, for the direct call): a figure a busy machine hardly moves.
        const server = child ?? upstream
        const cpuBefore = await server.cpu()
        const many = await drive(url, { connections: 32, seconds, body, headers })
        const cpuPerRequest = (await server.cpu() - cpuBefore) * 1000 / many.requests
        const one = await drive(url, { connections: 1, seconds, body, headers })
        runs.set(target.name, [...runs.get(target.name) ?? [], { many, one, cpuPerRequest }])
        const failed = many.failed + one.failed > 0 ? `  FAILED ANSWERS: ${many.failed + one.failed}` : ''
        console.log(`round ${round} ${target.name.padEnd(14)} 32 conns: ${many.rps.toFixed(0)} req/s p50 ${ms(many.p50)} p99 ${ms(many.p99)} ms, ${cpuPerRequest.toFixed(0)} µs CPU/req | 1 conn: p50 ${ms(one.p50)} p99 ${ms(one.p99)} ms${failed}`)
      } finally {
        await child?.stop()
      }
    }
  }

  // Best of the two rounds, figure by figure: on a shared machine noise only ever slows a run down.
  const best = (name: string) => {
    const r = runs.get(name)
    return r === undefined
      ? undefined
      : {
          rps: Math.max(...r.map((x) => x.many.rps)),
          p50: Math.min(...r.map((x) => x.many.p50)),
          p99: Math.min(...r.map((x) => x.many.p99)),
          oneP50: Math.min(...r.map((x) => x.one.p50)),
          oneP99: Math.min(...r.map((x) => x.one.p99)),
          cpu: Math.min(...r.map((x) => x.cpuPerRequest))
        }
  }
  const direct = best('direct')!
  const floor = best('floor')
  const added = (name: string): number => best(name)!.oneP50 - direct.oneP50
  const ratio = (value: number, of: number | undefined): string => of === undefined ? '-' : (value / of).toFixed(2)
  const rows = [['target', 'req/s @32', 'p50 @32', 'p99 @32', 'CPU µs/req', 'p50 @1', 'p99 @1', 'added p50 @1', 'req/s ÷ floor', 'added ÷ floor']]
  for (const target of targets) {
    const b = best(target.name)!
    const isDirect = target.name === 'direct'
    rows.push([target.name, b.rps.toFixed(0), ms(b.p50), ms(b.p99), b.cpu.toFixed(0), ms(b.oneP50), ms(b.oneP99), isDirect ? '-' : ms(added(target.name)), ratio(b.rps, floor?.rps), isDirect || floor === undefined ? '-' : ratio(added(target.name), added('floor'))])
  }
  console.log(`\nLoad (best of 2 rounds of ${seconds} s; latencies in ms to the end of the stream; added = p50 over the direct call;
CPU = the target's own CPU time per answer at 32 connections, the upstream's for the direct call)`)
  console.log(table(rows))

  // Issue targets: every feature on (keys, ledger, logs at info) against the floor, taken in pairs
  // of processes alive side by side (smallCosts): the table's rounds above are minutes apart.
  const all = best(APP_ALL)
  const { keysVerdict, targetOne, onRedis } = await smallCosts(keyHeader)
  if (targetOne !== null) {
    const framework = best(FLOOR_FASTIFY)
    const fromTable = `the table's best of 2: ${all === undefined || floor === undefined ? '-' : ratio(all.rps, floor.rps)}`
    const onFastify = framework === undefined || floor === undefined ? '' : `; the floor on Fastify: ${ratio(framework.rps, floor.rps)} × its req/s in the table`
    verdicts.push({ target: '1. req/s @32, all on ≥ 1.0 × floor', met: targetOne.rps.median >= 1, figures: `${targetOne.rps.median.toFixed(2)} (median of ${targetOne.pairs} pairs, ${range(targetOne.rps)}; ${fromTable}); CPU ${targetOne.b.toFixed(0)} vs ${targetOne.a.toFixed(0)} µs/answer${onFastify}` })
    const latency = targetOne.addedP50!
    const tableAdded = all === undefined || floor === undefined ? '-' : ratio(added(APP_ALL), added('floor'))
    verdicts.push({ target: '1. added p50 @1, all on ≤ 1.2 × floor', met: latency.ratio.median <= 1.2, figures: `${ms(latency.b)} vs ${ms(latency.a)} ms (${latency.ratio.median.toFixed(2)}, median of ${latency.measurements} taken in turns, ${range(latency.ratio)}; the table's best of 2: ${tableAdded})` })
  }
  if (keysVerdict !== null) verdicts.push(keysVerdict)
  const app = best('app')
  if (onRedis !== null) {
    // The shared store must cost serving nothing: no Redis round trip per request.
    const tableRedis = best(APP_REDIS)
    const fromTable = app === undefined || tableRedis === undefined ? '-' : ratio(tableRedis.rps, app.rps)
    verdicts.push({ target: 'req/s @32 on Redis within 10% of the file store', met: Math.abs(onRedis.rps.median - 1) <= 0.1, figures: `${onRedis.rps.median.toFixed(2)} (median of ${onRedis.pairs} pairs, ${range(onRedis.rps)}; the table's best of 2: ${fromTable}); CPU ${onRedis.b.toFixed(0)} vs ${onRedis.a.toFixed(0)} µs/answer` })
  }
  if (app !== undefined && all !== undefined) {
    console.log(`everything on (a key, logging at info) against the app as it starts by default: ${all.cpu.toFixed(0)} vs ${app.cpu.toFixed(0)} µs CPU per answer, ${ms(all.oneP50 - app.oneP50)} ms of p50 @1`)
  }
}

/**
 * Small costs, measured in pairs across fresh processes (see paired.ts): the ledger and a client
 * key (identified, limit checked) against the app without either; the app against itself, the
 * resolution of the method on this machine today; the framework alone against the floor; the
 * app on the shared Redis store against the file store; and target 1, everything on against the
 * floor, with its added latency at one connection.
 */
async function smallCosts (keyHeader: Record<string, string>): Promise<{ keysVerdict: Verdict | null, targetOne: PairedCost | null, onRedis: PairedCost | null }> {
  const o = { incarnations: INCARNATIONS, pairs: PAIRS_EACH, seconds: PAIR_SECONDS }
  const side = (name: string, args: string[], headers: Record<string, string>, execArgv: string[] = []) => async (): Promise<LoadSide> => {
    const server = await startChild(script(name), [upstreamBase, ...args], execArgv)
    return { server, url: `${proxied(server)}/responses`, body, headers }
  }
  const paired: string[][] = []
  let keysVerdict: Verdict | null = null
  const pairRow = (label: string, cost: PairedCost): void => {
    paired.push([label, String(cost.pairs), cost.cpu.median.toFixed(3), range(cost.cpu), `${cost.b.toFixed(0)} vs ${cost.a.toFixed(0)}`, cost.rps.median.toFixed(3), range(cost.rps)])
  }
  if (loadTargets.has('app-bare') && loadTargets.has('app-keys')) {
    const bareApp = side('app-server', ['warn', 'no-ledger'], codexHeaders, appExecArgv)
    const keysApp = side('app-server', ['warn', 'keys'], { ...codexHeaders, ...keyHeader }, appExecArgv)
    const keysCost = await pairedProcesses(async () => ({ a: await bareApp(), b: await keysApp() }), { ...o, incarnations: KEYS_INCARNATIONS })
    const selfCost = await pairedProcesses(async () => ({ a: await bareApp(), b: await bareApp() }), { ...o, incarnations: KEYS_INCARNATIONS })
    pairRow(`${APP_KEYS} ÷ ${APP_BARE}`, keysCost)
    pairRow(`${APP_BARE} ÷ another process of it (the method's noise)`, selfCost)
    keysVerdict = { target: 'keys + ledger cost ≤ 5% CPU per answer', met: keysCost.cpu.median <= 1.05, figures: `${keysCost.cpu.median.toFixed(2)} (median of ${keysCost.pairs} pairs, ${range(keysCost.cpu)}); ${keysCost.b.toFixed(0)} vs ${keysCost.a.toFixed(0)} µs; the app ÷ another process of it ${selfCost.cpu.median.toFixed(2)}` }
  }
  if (loadTargets.has('floor') && loadTargets.has('floor-fastify')) {
    pairRow(`${FLOOR_FASTIFY} ÷ floor (what the framework alone costs)`, await pairedProcesses(async () => ({ a: await side('floor-server', [], codexHeaders)(), b: await side('floor-fastify-server', [], codexHeaders)() }), o))
  }
  let onRedis: PairedCost | null = null
  if (loadTargets.has('app') && loadTargets.has('app-redis')) {
    const redisSide = async (): Promise<LoadSide> => {
      const server = await startAppOnRedis(upstreamBase, appExecArgv)
      return { server, url: `${proxied(server)}/responses`, body, headers: codexHeaders }
    }
    onRedis = await pairedProcesses(async () => ({ a: await side('app-server', ['warn'], codexHeaders, appExecArgv)(), b: await redisSide() }), o)
    pairRow(`${APP_REDIS} ÷ app (the shared store against the file store)`, onRedis)
  }
  let targetOne: PairedCost | null = null
  if (loadTargets.has('floor') && loadTargets.has('app-info')) {
    // Target 1: also the added p50 at one connection, the two servers and the direct call in turns.
    const latencyOver = { url: `${upstreamBase}/responses`, body, headers: codexHeaders }
    targetOne = await pairedProcesses(async () => ({ a: await side('floor-server', [], codexHeaders)(), b: await side('app-server', ['info', 'keys'], { ...codexHeaders, ...keyHeader }, appExecArgv)() }), { ...o, latencyOver })
    pairRow(`${APP_ALL} ÷ floor (target 1)`, targetOne)
  }
  if (paired.length > 0) {
    console.log(`\nSmall costs: CPU per answer at 32 connections, ${INCARNATIONS} fresh pairs of processes (the keys' two rows ${KEYS_INCARNATIONS}), each measured in ${PAIRS_EACH} pairs of ${PAIR_SECONDS} s runs back to back (median ratio, lowest–highest)`)
    console.log(table([['pair', 'pairs', 'CPU ratio', 'range', 'µs/answer', 'req/s ratio', 'range'], ...paired]))
  }
  if (targetOne?.addedP50 !== undefined) {
    const latency = targetOne.addedP50
    console.log(`${APP_ALL} against the floor at one connection, each with the direct call in turns (blocks of 50 requests) in every pair of processes: added p50 ${ms(latency.b)} vs ${ms(latency.a)} ms, ratio ${latency.ratio.median.toFixed(2)} (${range(latency.ratio)}, ${latency.measurements} measurements)`)
  }
  return { keysVerdict, targetOne, onRedis }
}

async function conversationPhase (): Promise<void> {
  const turns = 20
  const app = await startChild(script('app-server'), [upstreamBase, 'warn'], appExecArgv)
  const results = new Map<string, ConversationResult>()
  try {
    // A warm-up conversation each way first (JIT, connections), then the measured ones.
    await httpConversation(proxied(app), upstream, 3)
    await wsConversation(proxied(app), upstream, 3)
    results.set('HTTP direct', await httpConversation(upstreamBase, upstream, turns))
    results.set('HTTP through the pool', await httpConversation(proxied(app), upstream, turns))
    results.set('WebSocket direct', await wsConversation(upstreamBase, upstream, turns))
    results.set('WebSocket through the pool', await wsConversation(proxied(app), upstream, turns))
  } finally {
    await app.stop()
  }
  const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`
  const rows = [['conversation', 'turn 1 upstream', 'later turns upstream', 'p50 ms/turn', 'p99 ms/turn', 'added p50']]
  for (const [name, r] of results) {
    const direct = results.get(name.startsWith('HTTP') ? 'HTTP direct' : 'WebSocket direct')!
    rows.push([name, kb(r.firstBytes), kb(r.laterBytes), ms(r.p50), ms(r.p99), name.endsWith('direct') ? '-' : ms(r.p50 - direct.p50)])
  }
  console.log(`\nA ${turns}-turn conversation with a 2 MB history (request bytes the upstream received per turn; time per turn to its last event)`)
  console.log(table(rows))
  const http = results.get('HTTP through the pool')!
  const ws = results.get('WebSocket through the pool')!
  verdicts.push({ target: 'WebSocket sends only the new items', met: ws.laterBytes < 0.01 * http.laterBytes, figures: `${kb(ws.laterBytes)} vs ${kb(http.laterBytes)} per later turn` })
  await codexShapedLoad()
}

/**
 * Codex-shaped load: 16 conversations at once over HTTP, each of 20 turns whose history grows to
 * 2 MB (every turn sends all of it), direct, through the floor and through the app with every
 * feature on, in pairs (conversation-pairs.ts): CONVERSATION_INCARNATIONS fresh pairs of the floor
 * and the app, each measured in CONVERSATION_ROUNDS rounds. The app's conversation and blob checks
 * on these bodies are byte scans: the conversation stays on its account, so no body is parsed.
 */
async function codexShapedLoad (): Promise<void> {
  const conversations = 16
  const bodies = growingConversation(20, 2 * 1024 * 1024)
  const r = await pairedConversations({ base: upstreamBase, server: upstream }, async () => {
    const floor = await startChild(script('floor-server'), [upstreamBase])
    const app = await startChild(script('app-server'), [upstreamBase, 'info', 'keys'], appExecArgv)
    return { a: { base: proxied(floor), server: floor }, b: { base: proxied(app), server: app, headers: { authorization: `Bearer ${BENCH_CLIENT_KEY}` } } }
  }, bodies, { conversations, incarnations: CONVERSATION_INCARNATIONS, rounds: CONVERSATION_ROUNDS })
  const rows = [['target', 'turns', 'p50 ms/turn', 'p99 ms/turn', 'added p50', 'CPU µs/turn', 'CPU ÷ floor', 'added ÷ floor']]
  rows.push(['direct', String(r.direct.turns), ms(r.direct.p50), ms(r.direct.p99), '-', r.direct.cpuPerTurn.toFixed(0), '-', '-'])
  rows.push(['floor', String(r.a.turns), ms(r.a.p50), ms(r.a.p99), ms(r.addedA), r.a.cpuPerTurn.toFixed(0), '1.00', '1.00'])
  rows.push([APP_ALL, String(r.b.turns), ms(r.b.p50), ms(r.b.p99), ms(r.addedB), r.b.cpuPerTurn.toFixed(0), `${r.cpu.median.toFixed(2)} (${range(r.cpu)})`, `${r.added.median.toFixed(2)} (${range(r.added)})`])
  console.log(`\nCodex-shaped load: ${conversations} conversations at once over HTTP, 20 turns each, the history growing from ${(r.direct.firstBytes / 1024).toFixed(0)} KB to ${(r.direct.lastBytes / 1024 / 1024).toFixed(1)} MB
(${CONVERSATION_INCARNATIONS} fresh pairs of the floor and the app, each measured in ${CONVERSATION_ROUNDS} rounds of the three back to back, the order reversed every other round; figures are medians over the ${r.rounds} rounds,
ratios the median of each round's app ÷ floor and their range; CPU = the target's own per turn, the upstream's for the direct call; the app with a client key, the ledger and logs at info)`)
  console.log(table(rows))
  const over = `median of ${r.rounds} rounds`
  verdicts.push({ target: '2. Codex load: CPU per turn ≤ 1.2 × floor', met: r.cpu.median <= 1.2, figures: `${r.cpu.median.toFixed(2)} (${over}, ${range(r.cpu)}); ${r.b.cpuPerTurn.toFixed(0)} vs ${r.a.cpuPerTurn.toFixed(0)} µs` })
  verdicts.push({ target: '2. Codex load: added p50 per turn ≤ 1.2 × floor', met: r.added.median <= 1.2, figures: `${r.added.median.toFixed(2)} (${over}, ${range(r.added)}); ${ms(r.addedB)} vs ${ms(r.addedA)} ms` })
}

async function streamsPhase (): Promise<void> {
  const rows = [['target', 'streams', 'max open', 'late p50 µs', 'late p99 µs', 'late max µs', 'p99 in ramp', 'RSS idle', 'RSS all open', 'RSS peak', 'V8 heap', 'buffers']]
  const run = async (name: string, base: string, child: Child | null): Promise<StreamsResult> => {
    const idle = child === null ? 0 : await child.rss()
    const r = await slowStreams(base, { streams: streamCount, events: STREAM_EVENTS, intervalMs: STREAM_INTERVAL_MS, body, target: child })
    const memory = child === null ? ['-', '-', '-'] : [mib(idle), mib(r.rssAllOpen), mib(r.rssPeak)]
    const own = r.memoryAllOpen === null ? ['-', '-'] : [mib(r.memoryAllOpen.heapUsed), mib(r.memoryAllOpen.arrayBuffers)]
    rows.push([name, `${r.completed}/${streamCount}`, String(r.maxOpen), r.allOpen.p50.toFixed(0), r.allOpen.p99.toFixed(0), r.allOpen.max.toFixed(0), r.all.p99.toFixed(0), ...memory, ...own])
    return r
  }
  // Both servers start first and settle while the direct call is measured: a server meets its
  // streams long after its start, when V8 has given back what loading the code took.
  const floor = await startChild(script('floor-server'), [upstreamBase])
  const app = await startChild(script('app-server'), [upstreamBase, 'warn'], appExecArgv)
  const appYoung = await startChild(script('app-server'), [upstreamBase, 'warn'], [...SMALL_YOUNG_GENERATION, ...appExecArgv])
  // Each server's best of STREAM_ROUNDS rounds, the servers alternated: one run's p99 moves with
  // a single stall of the machine (the direct call's own latest event is milliseconds late), and
  // noise only ever makes events later. The load phase keeps its best round the same way.
  const best = new Map<string, StreamsResult>()
  try {
    const settled = Promise.all([floor, app, appYoung].map(settle))
    await run('direct', upstreamBase, null)
    const waited = await settled
    console.log(`\nidle servers settled after ${waited.map((ms) => (ms / 1000).toFixed(0)).join(', ')} s`)
    for (let round = 1; round <= STREAM_ROUNDS; round++) {
      for (const [name, child] of [['floor', floor], ['app', app], ['app, young 4MB', appYoung]] as const) {
        const r = await run(`${name}, round ${round}`, proxied(child), child)
        const was = best.get(name)
        if (was === undefined || r.allOpen.p99 < was.allOpen.p99) best.set(name, r)
      }
    }
    // A reference for what one proxy hop costs on this machine (its memory is its one worker's).
    const binary = await findNginx()
    if (binary !== null) {
      const nginx = await startNginx(binary, new URL(upstreamBase))
      await run('nginx', proxied(nginx), nginx).finally(() => nginx.stop())
    }
  } finally {
    await Promise.all([floor.stop(), app.stop(), appYoung.stop()])
  }
  console.log(`\n${streamCount} slow streams at once (${STREAM_EVENTS} events ${STREAM_INTERVAL_MS} ms apart, ${(body.length / 1024).toFixed(0)} KB bodies). Late = client arrival − upstream write,
for the events written while all streams were open ("p99 in ramp": all events, including those written while bodies were still being sent).
RSS idle: before the run (in round 1, once settled); V8 heap and buffers: the target's own count when all streams were open`)
  console.log(table(rows))
  const result = best.get('app')!
  const floorResult = best.get('floor')!
  verdicts.push({ target: `4. event p99 late, ${streamCount} streams ≤ 1.5 × floor (best of ${STREAM_ROUNDS} rounds each)`, met: result.allOpen.p99 <= 1.5 * floorResult.allOpen.p99, figures: `${result.allOpen.p99.toFixed(0)} vs ${floorResult.allOpen.p99.toFixed(0)} µs (${(result.allOpen.p99 / floorResult.allOpen.p99).toFixed(2)}); p50 ${result.allOpen.p50.toFixed(0)} vs ${floorResult.allOpen.p50.toFixed(0)} µs` })
  if (manyStreams > 0) await manyStreamsMemory()
}

/**
 * The app's memory with many slow streams open at once (a fresh, settled app). A proxy holds two
 * sockets per stream: when the open-files limit cannot be raised that far, the run takes as many
 * streams as fit, and the figure for `manyStreams` is the idle RSS plus that many times the
 * measured cost per stream.
 */
async function manyStreamsMemory (): Promise<void> {
  const limits = openFilesLimits()
  const fit = Math.min(Math.floor((limits.hard - 256) / 2), limits.soft - 256)
  const streams = Math.min(manyStreams, fit)
  // The streams are let go as soon as all are open and measured: the ramp's speed does not decide the
  // figure. (A busy machine opens them many times more slowly than the 2,000 a second the ramp
  // allows: each brings a 40 KB body, and every open stream an event each STREAM_INTERVAL_MS, 20,000 a
  // second at 10,000 streams. Streams of a fixed length sometimes ended before the last had opened.)
  // Their length only bounds a run on a machine that cannot open them: 60 ms per stream.
  const events = Math.max(STREAM_EVENTS, Math.ceil((streams * 60 + 40_000) / STREAM_INTERVAL_MS))
  const app = await startChild(script('app-server'), [upstreamBase, 'warn'], appExecArgv)
  try {
    await settle(app)
    const idle = await app.rss()
    // Lateness is not this run's figure: the client's time stays for opening streams.
    const r = await slowStreams(proxied(app), { streams, events, intervalMs: STREAM_INTERVAL_MS, body, target: app, noteLateness: false, letGoOnceMeasured: true })
    // Not all open at once (a very busy machine): the figure is taken at the peak, over the most seen open.
    const measured = r.maxOpen === streams
    const perStream = ((measured ? r.rssAllOpen : r.rssPeak) - idle) / r.maxOpen
    const projected = idle + perStream * manyStreams
    const own = r.memoryAllOpen === null ? '' : `; V8 heap ${mib(r.memoryAllOpen.heapUsed)}, buffers ${mib(r.memoryAllOpen.arrayBuffers)}`
    console.log(`
The app with ${streams.toLocaleString('en')} slow streams at once (events ${STREAM_INTERVAL_MS} ms apart, ${(body.length / 1024).toFixed(0)} KB bodies, let go once measured): ${r.maxOpen} open at most (${(r.msToMostOpen / 1000).toFixed(0)} s after the first request);
RSS idle ${mib(idle)}, all open ${mib(r.rssAllOpen)} (peak ${mib(r.rssPeak)})${own}: ${(perStream / 1024).toFixed(1)} KB per stream${streams < manyStreams ? `; ${manyStreams.toLocaleString('en')} would take ${mib(projected)} (open files: this process ${limits.soft}, a server ${limits.hard}: ${streams.toLocaleString('en')} streams fit)` : ''}`)
    verdicts.push({ target: `3. ${manyStreams.toLocaleString('en')} streams in ≤ 600 MB RSS`, met: measured && projected <= 600 * 1024 * 1024, figures: `${mib(projected)}${streams < manyStreams ? ` (projected from ${streams.toLocaleString('en')})` : ''}, ${(perStream / 1024).toFixed(1)} KB/stream${measured ? '' : `, only ${r.maxOpen} open at once`}` })
  } finally {
    await app.stop()
  }
}

/**
 * Open files this bench may use (its soft limit: it holds the client side of every stream) and a
 * child may (the hard limit, which it raises its own to), from /proc.
 */
function openFilesLimits (): { soft: number, hard: number } {
  try {
    const fields = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))!.trim().split(/\s+/)
    const value = (text: string | undefined): number => text === 'unlimited' ? Infinity : Number(text)
    return { soft: value(fields[3]), hard: value(fields[4]) }
  } catch {
    return { soft: 1024, hard: 1024 }
  }
}

/**
 * Waits (up to 30 s) for an idle server's V8 heap to shrink: its memory reducer runs once it has
 * been quiet for a while. Resolves to the time it took from the server's start.
 */
async function settle (child: Child): Promise<number> {
  const started = performance.now()
  const first = (await child.memory())!.heapTotal
  while (performance.now() - started < 30_000) {
    await sleep(1000)
    if ((await child.memory())!.heapTotal < 0.8 * first) break
  }
  return performance.now() - started
}

async function pickPhase (): Promise<void> {
  const sizes = [10, 10_000]
  const redis = await launchRedis()
  try {
    for (const [store, redisUrl] of [['in memory', null], ['on a shared Redis store', redis.url]] as const) {
      const cases = await pickBenchmark(sizes, redisUrl)
      console.log(`\nAccountPool.pick, ${store} (ns per call, best of 5 rounds of 100 ms)`)
      console.log(table([['path', ...sizes.map((size) => `${size} accounts`), 'ratio'], ...cases.map((c) => [c.name, ...sizes.map((size) => c.ns[size]!.toFixed(0)), (c.ns[10_000]! / c.ns[10]!).toFixed(2)])]))
      const worst = Math.max(...cases.map((c) => c.ns[10_000]! / c.ns[10]!))
      verdicts.push({ target: `pick() as cheap at 10,000 as at 10, ${store}`, met: worst <= 1.5, figures: `worst ratio ${worst.toFixed(2)}` })
    }
  } finally {
    await redis.cleanup()
  }
}

/**
 * The translated path's cost: the app's own CPU per answer for a streamed chat completion (the
 * request translated, the events read and rewritten as chunks) against the same turn over
 * `/v1/responses`, both at 32 connections, measured in pairs in one app process serving both,
 * in several fresh processes (see paired.ts). Like for like: both client bodies are 40 KB, the
 * upstream receives bodies of the same size (shown) and answers both with the same 8 events, and
 * both are streamed.
 */
async function clientsPhase (): Promise<void> {
  const chatBody = chatRequestBody()
  const sides = async (): Promise<{ a: LoadSide, b: LoadSide }> => {
    const app = await startChild(script('app-server'), [upstreamBase, 'warn'], appExecArgv)
    return {
      a: { server: app, url: `${proxied(app)}/responses`, body, headers: codexHeaders },
      b: { server: app, url: `${proxied(app)}/chat/completions`, body: chatBody, headers: { 'content-type': 'application/json' } }
    }
  }
  // The bytes the upstream receives per answer, from a run of each.
  const upstreamKb: number[] = []
  const first = await sides()
  try {
    for (const side of [first.a, first.b]) {
      const bytesBefore = await upstream.bytes!()
      const run = await drive(side.url, { connections: 32, seconds: 2, body: side.body, headers: side.headers })
      if (run.failed > 0) console.log(`${side.url}: FAILED ANSWERS: ${run.failed}`)
      upstreamKb.push((await upstream.bytes!() - bytesBefore) / (run.requests + run.failed) / 1024)
    }
  } finally {
    await first.a.server.stop()
  }
  const cost: PairedCost = await pairedProcesses(sides, { incarnations: INCARNATIONS, pairs: PAIRS_EACH, seconds: PAIR_SECONDS })
  console.log(`\nTranslated API (the app's CPU per streamed answer at 32 connections, ${INCARNATIONS} fresh app processes serving both, each measured in ${PAIRS_EACH} pairs of ${PAIR_SECONDS} s runs back to back; both streamed, the same 8 upstream events)`)
  // Upstream KB per answer: the bodies the upstream read over the run (requests in flight at its ends blur it by a percent or so).
  const kb = (bytes: number): string => (bytes / 1024).toFixed(1)
  console.log(table([
    ['path', 'request KB', 'upstream KB/answer', 'CPU µs/answer (median)'],
    ['responses (pass-through)', kb(body.length), upstreamKb[0]!.toFixed(1), cost.a.toFixed(0)],
    ['chat completions (translated)', kb(chatBody.length), upstreamKb[1]!.toFixed(1), cost.b.toFixed(0)]
  ]))
  verdicts.push({ target: 'a translated chat completion ≤ 1.2 × the CPU of a Responses call', met: cost.cpu.median <= 1.2, figures: `${cost.cpu.median.toFixed(2)} (median of ${cost.pairs} pairs, ${range(cost.cpu)}); ${cost.b.toFixed(0)} vs ${cost.a.toFixed(0)} µs` })
}

function blobsPhase (): void {
  const f = blobBenchmark()
  console.log(`\nEncrypted-blob checks per request (${mib(f.bodyBytes)} body, ${f.blobs} reasoning items)`)
  console.log(table([
    ['path', 'µs per request'],
    ['conversation stays on its account (byte scans, no parse)', f.staysUs.toFixed(1)],
    ['conversation moved (every blob fingerprinted, body rewritten)', f.movedUs.toFixed(0)]
  ]))
  console.log(`blob owners at capacity: ${f.capacity.toLocaleString('en')} fingerprints in ${mib(f.ownersBytes)} (${(f.ownersBytes / f.capacity).toFixed(0)} bytes each)`)
  verdicts.push({ target: 'blob checks of a staying conversation cost < 1% of a moved one', met: f.staysUs * 100 < f.movedUs, figures: `${f.staysUs.toFixed(1)} µs vs ${f.movedUs.toFixed(0)} µs on ${mib(f.bodyBytes)}` })
  verdicts.push({ target: 'blob owners bounded (≤ 32 MB full)', met: f.ownersBytes <= 32 * 1024 * 1024, figures: `${mib(f.ownersBytes)} for ${f.capacity.toLocaleString('en')}` })
}
