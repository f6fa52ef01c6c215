/**
 * Several in-process instances of the real app sharing one real Redis and one set of fakes, each
 * listening on its own loopback port: what a load balancer in front of them would see.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { buildApp, type BuildOptions } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { startFakeOpenAI, type FakeAccount, type FakeOpenAI, type FakeOpenAIOptions } from '../fakes/index.js'
import { startRedis, type RedisServer, type RedisServerOptions } from '../support/redis-server.js'
import { lifo } from './lifo.js'

export interface Node {
  name: string
  app: FastifyInstance
  url: string
  config: Config
  logs: Array<Record<string, unknown>>
  /** Stops this instance (its pending writes land first). */
  stop: () => Promise<void>
}

export interface Cluster {
  redis: RedisServer
  fake: FakeOpenAI
  nodes: Node[]
  /** Adds a fake account and imports it through `node`'s management API. */
  addAccount: (node: Node, o?: { email?: string }) => Promise<FakeAccount & { id: string }>
}

export interface ClusterOptions {
  instances?: number
  fake?: FakeOpenAIOptions
  build?: BuildOptions
  redis?: RedisServerOptions
  settings?: Record<string, string>
}

export async function startCluster (t: TestContext, o: ClusterOptions = {}): Promise<Cluster> {
  const cleanup = lifo(t)
  const redis = await startRedis(cleanup, o.redis)
  const fake = await startFakeOpenAI(o.fake)
  cleanup.after(() => fake.close())
  const scratch = await mkdtemp(join(tmpdir(), 'ceq-cluster-'))
  cleanup.after(() => rm(scratch, { recursive: true, force: true }))
  const nodes: Node[] = []
  for (let i = 0; i < (o.instances ?? 2); i++) {
    const name = `node-${String.fromCharCode(97 + i)}`
    const config = loadConfig({
      port: '0', authsDir: join(scratch, name), upstream: fake.backendUrl, issuer: fake.issuerUrl, callbackPort: '0', logLevel: 'debug',
      redisUrl: redis.url, redisPrefix: 'cluster:', instanceName: name, ...o.settings
    }, {})
    const logs: Array<Record<string, unknown>> = []
    const sink = { write (line: string) { logs.push(JSON.parse(line) as Record<string, unknown>) } }
    const app = await buildApp(config, { logger: pino({ level: config.logLevel }, sink), shared: { heartbeatMs: 200 }, ...o.build })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    let stopped = false
    const node: Node = {
      name,
      app,
      config,
      logs,
      url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`,
      async stop () {
        if (stopped) return
        stopped = true
        await app.close()
      }
    }
    cleanup.after(() => node.stop())
    nodes.push(node)
  }
  return {
    redis,
    fake,
    nodes,
    async addAccount (node, a = {}) {
      const account = fake.addAccount(a)
      const response = await fetch(`${node.url}/accounts/import`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id_token: account.tokens.id_token, access_token: account.tokens.access_token, refresh_token: account.tokens.refresh_token })
      })
      if (response.status !== 201 && response.status !== 200) throw new Error(`import failed: ${response.status} ${await response.text()}`)
      const view = await response.json() as { id: string }
      return { ...account, id: view.id }
    }
  }
}

/** Polls until `check` holds (at most `ms`). */
export async function eventually (what: string, check: () => boolean | Promise<boolean>, ms = 1_000): Promise<number> {
  const started = Date.now()
  while (!await check()) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return Date.now() - started
}

/** One Redis and the fakes for instances started as real processes; `env` is one instance's settings. */
export interface ProcessCluster {
  cleanup: ReturnType<typeof lifo>
  redis: RedisServer
  fake: FakeOpenAI
  env: (authsDir: string, name: string) => Record<string, string>
}

/** A real redis-server and the fakes, stopped in reverse order when the test ends. */
export async function startProcessCluster (t: TestContext): Promise<ProcessCluster> {
  const cleanup = lifo(t)
  const redis = await startRedis(cleanup)
  const fake = await startFakeOpenAI()
  cleanup.after(() => fake.close())
  const dir = await mkdtemp(join(tmpdir(), 'ceq-cluster-'))
  cleanup.after(() => rm(dir, { recursive: true, force: true }))
  const env = (authsDir: string, name: string): Record<string, string> => ({
    CODEX_EQ_UPSTREAM: fake.backendUrl,
    CODEX_EQ_ISSUER: fake.issuerUrl,
    CODEX_EQ_CALLBACK_PORT: '0',
    CODEX_EQ_AUTHS_DIR: join(dir, authsDir),
    CODEX_EQ_REDIS_URL: redis.url,
    CODEX_EQ_INSTANCE_NAME: name
  })
  return { cleanup, redis, fake, env }
}
