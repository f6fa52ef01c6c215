/**
 * Who may use the pool: listening beyond loopback needs an admin token (and warns without API
 * keys); the admin token and the API keys open different doors, and neither opens the other's.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { TokenStore } from '../../src/store/file-store.js'
import { KEYS_FILE, KeyFile } from '../../src/store/key-file.js'
import { RedisStore } from '../../src/store/redis-store.js'
import { lifo } from '../helpers/lifo.js'
import { startRedis } from '../support/redis-server.js'
import { postResponses, responsesBody, startStack } from '../helpers/stack.js'
import { fakesForProcess, spawnCli } from '../reliability/server-process.js'
import { ENDPOINTS, pathFor } from './endpoints.js'

const ADMIN_TOKEN = 'admin-token-0123456789abcdef'
const API_KEY = 'client-key-0123456789abcdef'

test('serve beyond loopback without an admin token refuses to start and says how to set one', async (t) => {
  const { authsDir, env } = await fakesForProcess(t)
  for (const host of ['0.0.0.0', '::', '192.168.1.20']) {
    const server = spawnCli(t, ['serve', '--host', host, '--port', '0'], env)
    assert.deepEqual(await server.exited, { code: 2, signal: null }, host)
    assert.equal(server.text(), `codex-eq: refusing to listen on ${host} without an admin token: set --admin-token or CODEX_EQ_ADMIN_TOKEN (or listen on 127.0.0.1)\n`)
  }
  const fromEnv = spawnCli(t, ['serve', '--port', '0'], { ...env, CODEX_EQ_HOST: '0.0.0.0' })
  assert.deepEqual(await fromEnv.exited, { code: 2, signal: null })
  assert.match(fromEnv.text(), /refusing to listen on 0\.0\.0\.0 without an admin token: set --admin-token or CODEX_EQ_ADMIN_TOKEN/)
  assert.equal(existsSync(authsDir), false, 'it stopped before touching the auths dir')
})

test('serve beyond loopback with an admin token but no API keys logs a loud warning; with keys it does not', async (t) => {
  const { authsDir, env } = await fakesForProcess(t)
  // The test holds the auths dir, so the server stops right after its checks and never listens
  // beyond loopback (tests stay on 127.0.0.1).
  const holder = new TokenStore(authsDir)
  await holder.open()
  t.after(() => holder.close())

  const unkeyed = spawnCli(t, ['serve', '--host', '0.0.0.0', '--port', '0', '--admin-token', ADMIN_TOKEN], env)
  assert.deepEqual(await unkeyed.exited, { code: 2, signal: null })
  const warnings = unkeyed.logs.filter((line) => line.level === 40)
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0]!.msg, 'LISTENING ON 0.0.0.0 WITHOUT API KEYS: anyone who can reach this port can spend the pool\'s quota through /v1. Set --api-key or CODEX_EQ_API_KEYS, or make a client key (codex-eq keys create NAME).')
  assert.match(unkeyed.text(), /is in use by another codex-equilibrium process/)
  assert.doesNotMatch(JSON.stringify(unkeyed.logs) + unkeyed.text(), new RegExp(ADMIN_TOKEN), 'the admin token is not echoed')

  const keyed = spawnCli(t, ['serve', '--host', '0.0.0.0', '--port', '0', '--admin-token', ADMIN_TOKEN, '--api-key', API_KEY], env)
  assert.deepEqual(await keyed.exited, { code: 2, signal: null })
  assert.equal(keyed.logs.filter((line) => line.level === 40).length, 0)

  // A client key made at run time protects /v1 as well: no warning either.
  await new KeyFile(authsDir).save([{ id: 'key_0123456789ab', name: 'alice', hash: '0'.repeat(64), createdAt: Date.now(), lastUsedAt: null, dailyTokenLimit: null, expiresAt: null }])
  const managed = spawnCli(t, ['serve', '--host', '0.0.0.0', '--port', '0', '--admin-token', ADMIN_TOKEN], env)
  assert.deepEqual(await managed.exited, { code: 2, signal: null })
  assert.equal(managed.logs.filter((line) => line.level === 40).length, 0)
})

test('with a Redis URL the warning counts the client keys made at run time in the shared store', async (t) => {
  const cleanup = lifo(t)
  const redis = await startRedis(cleanup)
  const { env } = await fakesForProcess(t)
  // A running instance holds the name, so the server stops right after its checks (it never listens beyond loopback).
  const holder = await RedisStore.open({ url: redis.url, prefix: 'codex-eq:', instance: 'twin', heartbeatMs: 100 })
  cleanup.after(() => holder.close())
  const shared = { ...env, CODEX_EQ_REDIS_URL: redis.url, CODEX_EQ_INSTANCE_NAME: 'twin' }
  const start = async (): Promise<Array<Record<string, unknown>>> => {
    const server = spawnCli(t, ['serve', '--host', '0.0.0.0', '--port', '0', '--admin-token', ADMIN_TOKEN], shared)
    assert.deepEqual(await server.exited, { code: 2, signal: null })
    assert.match(server.text(), /another instance named "twin" is running/)
    return server.logs.filter((line) => line.level === 40)
  }
  const unkeyed = await start()
  assert.equal(unkeyed.length, 1)
  assert.match(String(unkeyed[0]!.msg), /^LISTENING ON 0\.0\.0\.0 WITHOUT API KEYS/)

  // A key made on any instance lives in Redis (none in this auths dir): no warning.
  await holder.clientKeys.save([{ id: 'key_0123456789ab', name: 'alice', hash: '0'.repeat(64), createdAt: Date.now(), lastUsedAt: null, dailyTokenLimit: null, expiresAt: null }])
  assert.equal(existsSync(join(env.CODEX_EQ_AUTHS_DIR!, KEYS_FILE)), false)
  assert.deepEqual(await start(), [])
})

test('the admin token is not an API key and an API key is not the admin token', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN_TOKEN, apiKey: [API_KEY] } })
  const account = await stack.addAccount()
  const before = await (await fetch(`${stack.url}/accounts`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()

  const wrong = [`Bearer ${API_KEY}`, `Bearer ${API_KEY.toUpperCase()}`, `Bearer ${ADMIN_TOKEN.slice(0, -1)}`, `Bearer ${ADMIN_TOKEN}x`, `Basic ${Buffer.from(`x:${ADMIN_TOKEN}`).toString('base64')}`, ADMIN_TOKEN, `Bearer ${ADMIN_TOKEN} ${ADMIN_TOKEN}`, '']
  for (const endpoint of ENDPOINTS) {
    for (const authorization of wrong) {
      const response = await fetch(`${stack.url}${pathFor(endpoint, account.id)}?token=${ADMIN_TOKEN}`, {
        method: endpoint.method,
        redirect: 'manual',
        headers: { 'content-type': 'application/json', ...(authorization === '' ? {} : { authorization }) },
        ...(endpoint.method === 'POST' ? { body: '{}' } : {})
      })
      const text = await response.text()
      assert.equal(response.status, 401, `${endpoint.method} ${endpoint.path} with "${authorization.slice(0, 12)}…"`)
      assert.equal(response.headers.get('www-authenticate'), 'Bearer')
      assert.equal((JSON.parse(text) as { error: { type: string } }).error.type, 'unauthorized')
      assert.ok(!text.includes(API_KEY) && !text.includes(ADMIN_TOKEN), 'the answer does not echo a secret')
    }
  }
  for (const authorization of [`Bearer ${ADMIN_TOKEN}`, `Bearer ${API_KEY}x`, undefined]) {
    const response = await postResponses(stack, responsesBody(), authorization === undefined ? {} : { authorization })
    assert.equal(response.status, 401, `/v1 with ${String(authorization).slice(0, 12)}…`)
    await response.text()
  }
  assert.equal(stack.fake.backend.requests.length, 0, 'nothing reached upstream')
  assert.equal(stack.fake.issuer.refreshCalls, 0)
  assert.equal(await (await fetch(`${stack.url}/accounts`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text(), before, 'nothing changed')

  // Each opens its own door.
  assert.equal((await fetch(`${stack.url}/accounts`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200)
  assert.equal((await fetch(`${stack.url}/accounts`, { headers: { authorization: `bearer   ${ADMIN_TOKEN}` } })).status, 200, 'the scheme is case-insensitive')
  const served = await postResponses(stack, responsesBody(), { authorization: `Bearer ${API_KEY}` })
  assert.equal(served.status, 200)
  await served.text()
  assert.equal((await fetch(`${stack.url}/healthz`)).status, 200, '/healthz stays open for probes')
})
