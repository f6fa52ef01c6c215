/*
 * One name, one live instance: leases and spending markers are held by instance name, so a second
 * instance under a name a running one holds is refused at start, in one line naming the setting.
 * An instance killed with -9 and started again under its name waits its old heartbeat out and starts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import pino from 'pino'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startFakeOpenAI } from '../fakes/index.js'
import { tempDir } from '../helpers/stack.js'
import { lifo } from '../helpers/lifo.js'
import { startCluster, startProcessCluster } from '../helpers/cluster.js'
import { spawnCli, spawnServer } from '../reliability/server-process.js'
import { rawClient, startRedis } from '../support/redis-server.js'

test('a second instance under a name a running one holds is refused, before it touches the pool', async (t) => {
  const { nodes: [a], redis, fake } = await startCluster(t, { instances: 1 })
  const config = loadConfig({
    port: '0', authsDir: join(await tempDir(t), 'twin'), upstream: fake.backendUrl, issuer: fake.issuerUrl, callbackPort: '0',
    redisUrl: redis.url, redisPrefix: 'cluster:', instanceName: a!.name
  }, {})
  const started = Date.now()
  await assert.rejects(buildApp(config, { logger: pino({ level: 'silent' }), shared: { heartbeatMs: 200 } }),
    /another instance named "node-a" is running on this pool .*--instance-name \(CODEX_EQ_INSTANCE_NAME\)/)
  assert.ok(Date.now() - started < 2_000, 'refused within a heartbeat or so')
  // The running instance keeps its name and serves on.
  assert.equal((await fetch(`${a!.url}/healthz`)).status, 200)
  const raw = rawClient(t, redis.url)
  assert.ok(await raw.exists('cluster:instance:node-a') === 1)
})

test('an instance whose heartbeat was left behind (killed) is waited out: its name starts again', async (t) => {
  const cleanup = lifo(t)
  const redis = await startRedis(cleanup)
  const fake = await startFakeOpenAI()
  cleanup.after(() => fake.close())
  const raw = rawClient(cleanup, redis.url)
  await raw.set('cluster:instance:node-a', 'a-boot-that-died', 'PX', 600)
  const config = loadConfig({
    port: '0', authsDir: join(await tempDir(t), 'node-a'), upstream: fake.backendUrl, issuer: fake.issuerUrl, callbackPort: '0',
    redisUrl: redis.url, redisPrefix: 'cluster:', instanceName: 'node-a'
  }, {})
  const started = Date.now()
  const app = await buildApp(config, { logger: pino({ level: 'silent' }), shared: { heartbeatMs: 200 } })
  cleanup.after(() => app.close())
  const waited = Date.now() - started
  assert.ok(waited >= 400 && waited < 2_000, `waited ${waited} ms for the old heartbeat to expire`)
  assert.notEqual(await raw.get('cluster:instance:node-a'), 'a-boot-that-died')
})

test('processes: kill -9 and a quick restart under the same name starts; a twin of a running one exits with one line', async (t) => {
  const cluster = await startProcessCluster(t)
  const { cleanup } = cluster
  const env = (authsDir: string): Record<string, string> => cluster.env(authsDir, 'node-a')
  const first = await spawnServer(t, { env: env('first') })
  process.kill(first.pid, 'SIGKILL')
  await first.exited
  // Its heartbeat lives on for up to three beats (6 s): the restart waits for it, then starts.
  const started = Date.now()
  const again = await spawnServer(t, { env: env('again') })
  t.diagnostic(`restarted under the same name after ${Date.now() - started} ms`)
  cleanup.after(async () => {
    if (again.child.exitCode !== null) return
    again.child.kill('SIGTERM')
    await again.exited
  })
  const twin = spawnCli(t, ['serve', '--host', '127.0.0.1', '--port', '0'], env('twin'))
  const exit = await twin.exited
  assert.notEqual(exit.code, 0)
  const said = twin.text().trim().split('\n').filter((line) => !/Warning|--trace-warnings/.test(line))
  assert.equal(said.length, 1, `one line: ${twin.text()}`)
  assert.match(said[0]!, /another instance named "node-a" is running on this pool .*--instance-name/)
  assert.doesNotMatch(twin.text(), /listening on/)
  assert.equal((await fetch(`${again.url}/healthz`)).status, 200)
})
