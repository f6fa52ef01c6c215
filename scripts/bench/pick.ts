import { AccountPool } from '../../src/pool/account-pool.js'
import { RedisStore } from '../../src/store/redis-store.js'
import { benchTokens } from './bench-account.js'

export interface PickCase {
  name: string
  /** Cost of one pick() in ns, best of several rounds. */
  ns: Record<number, number>
}

const NO_REFRESH = { refresh: async () => { throw new Error('no refresh in the benchmark') } }

/** A pool of `count` accounts kept in memory only. */
async function poolOf (count: number): Promise<AccountPool> {
  const pool = await AccountPool.create({
    store: { load: async () => ({ version: 1, sticky: null, accounts: [] }), save: async () => {}, flush: async () => {} },
    oauth: NO_REFRESH,
    cooldownMs: 3 * 3600_000
  })
  for (let n = 0; n < count; n++) await pool.importTokens(benchTokens(n))
  return pool
}

/**
 * The same pool kept in a shared Redis store: written there once, then loaded by a pool on that store
 * (the mirror every instance of a shared pool serves from). Closing the pool closes the store.
 */
async function poolOnRedis (count: number, redisUrl: string): Promise<AccountPool> {
  const seed = await poolOf(count)
  const store = await RedisStore.open({ url: redisUrl, password: null, prefix: `bench-pick-${count}:`, instance: `bench-pick-${count}` })
  await store.save(seed.snapshot())
  await seed.close()
  const pool = await AccountPool.create({ store, oauth: NO_REFRESH, cooldownMs: 3 * 3600_000 })
  const close = pool.close.bind(pool)
  pool.close = async () => { await close(); await store.close() }
  return pool
}

/** ns per call over about 100 ms (long enough to be stable, short enough that a slow path cannot stall the bench). */
function timePick (pick: () => unknown): number {
  let calls = 0
  const started = process.hrtime.bigint()
  let elapsed = 0n
  while (elapsed < 100_000_000n) {
    for (let i = 0; i < 1000; i++) pick()
    calls += 1000
    elapsed = process.hrtime.bigint() - started
  }
  return Number(elapsed) / calls
}

/**
 * The pool's choice of account with few and with many accounts, on the paths a request takes:
 * the sticky account serving; a conversation's own account; and the sticky account resting, so
 * the next one after it (in add order) takes over. The sticky account sits in the middle of the
 * list. The sizes take turns over 5 rounds and each keeps its best, so a busy moment hits both alike.
 */
export async function pickBenchmark (sizes: number[], redisUrl: string | null = null): Promise<PickCase[]> {
  const none = new Set<string>()
  const setups = await Promise.all(sizes.map(async (size) => {
    const pool = redisUrl === null ? await poolOf(size) : await poolOnRedis(size, redisUrl)
    const accounts = pool.list()
    const middle = accounts[Math.floor(size / 2)]!
    const owner = accounts[Math.floor(size / 3)]!
    await pool.select(middle.id)
    return { size, pool, middle, owner }
  }))
  const cases: Array<PickCase & { before?: (setup: typeof setups[number]) => void, pick: (setup: typeof setups[number]) => unknown }> = [
    { name: 'sticky account serves', ns: {}, pick: (s) => s.pool.pick(none) },
    { name: 'conversation\'s own account', ns: {}, pick: (s) => s.pool.pick(none, s.owner.id) },
    {
      name: 'sticky resting: next one',
      ns: {},
      before: (s) => { s.pool.rest(s.middle, { until: s.pool.now() + 3600_000, kind: 'cooling', reason: 'bench', source: 'bench' }) },
      pick: (s) => s.pool.pick(none)
    }
  ]
  for (const c of cases) {
    for (const setup of setups) c.before?.(setup)
    for (let round = 0; round < 5; round++) {
      for (const setup of setups) c.ns[setup.size] = Math.min(c.ns[setup.size] ?? Infinity, timePick(() => c.pick(setup)))
    }
  }
  for (const setup of setups) await setup.pool.close()
  return cases.map(({ name, ns }) => ({ name, ns }))
}
