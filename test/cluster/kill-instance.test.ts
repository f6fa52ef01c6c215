/*
 * kill -9 of one of two server processes in the middle of a refresh storm on a shared Redis: the
 * other serves on, nothing stored is lost, and no refresh token is spent twice. A rotation that
 * was at the issuer when its instance died is the one thing that can be lost (as with one process):
 * it is found by its spending marker and said on the account once the dead instance's heartbeat
 * has expired.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { AUTH_CLAIM, decodeJwtPayload, type FakeOpenAI } from '../fakes/index.js'
import { responsesBody } from '../helpers/stack.js'
import { startProcessCluster } from '../helpers/cluster.js'
import { importTokens, spawnServer, type ServerProcess } from '../reliability/server-process.js'
import { rawClient } from '../support/redis-server.js'

function newestRefreshTokens (fake: FakeOpenAI): Map<string, string> {
  const secrets = fake.allIssuedSecrets()
  const newest = new Map<string, string>()
  for (let i = 0; i + 2 < secrets.length; i += 3) newest.set(String(decodeJwtPayload(secrets[i]!)[AUTH_CLAIM].chatgpt_account_id), secrets[i + 2]!)
  return newest
}

async function loop (stop: AbortSignal, step: () => Promise<void>): Promise<void> {
  while (!stop.aborted) {
    try {
      await step()
    } catch {
      return // the process is gone
    }
    await sleep(Math.random() * 20)
  }
}

test('kill -9 of one instance mid-storm: the other serves on, nothing stored is lost, a rotation cut off at the issuer is said on the account', async (t) => {
  const cluster = await startProcessCluster(t)
  const { cleanup, redis, fake } = cluster
  const env = (name: string): Record<string, string> => cluster.env(name, name)
  const servers: ServerProcess[] = []
  for (const name of ['p1', 'p2']) servers.push(await spawnServer(t, { env: env(name) }))
  const [p1, p2] = servers as [ServerProcess, ServerProcess]
  cleanup.after(async () => {
    if (p2.child.exitCode === null) {
      p2.child.kill('SIGTERM')
      await p2.exited
    }
  })
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push(await importTokens(p1.url, fake.addAccount({ email: `storm${i}@example.com` }).tokens))
  const raw = rawClient(cleanup, redis.url)
  fake.issuer.delayRefreshMs = 100

  const stop = new AbortController()
  const turnsOnP2: number[] = []
  const loops = [
    ...ids.flatMap((id) => servers.map((server) => loop(stop.signal, async () => { await (await fetch(`${server.url}/accounts/${id}/refresh`, { method: 'POST', signal: stop.signal })).text() }))),
    loop(stop.signal, async () => { await (await fetch(`${p1.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(responsesBody('p1')), signal: stop.signal })).text() }),
    loop(stop.signal, async () => {
      const response = await fetch(`${p2.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(responsesBody('p2')), signal: stop.signal })
      await response.text()
      turnsOnP2.push(response.status)
    })
  ]
  await sleep(300 + Math.random() * 300)
  process.kill(p1.pid, 'SIGKILL')
  assert.deepEqual(await p1.exited, { code: null, signal: 'SIGKILL' })
  const servedBefore = turnsOnP2.length
  await sleep(500)
  stop.abort()
  await Promise.all(loops)
  assert.ok(turnsOnP2.length > servedBefore, 'p2 served on after the kill')
  assert.deepEqual(turnsOnP2.filter((status) => status !== 200), [], 'every turn on p2 was served')

  // Redis now holds, for each account, the newest refresh token the issuer minted, unless p1 was at
  // the issuer with it when it died: then its spending marker says so.
  await sleep(300) // p2's own last commits
  const newest = newestRefreshTokens(fake)
  const inFlight = new Set<string>()
  for (const id of ids) {
    const hash = await raw.hgetall(`codex-eq:account:${id}`)
    const stored = (JSON.parse(hash.tokens!) as { tokens: { refreshToken: string } }).tokens.refreshToken
    const accountId = (JSON.parse(hash.meta!) as { accountId: string }).accountId
    if (stored === newest.get(accountId)) continue
    const marker = JSON.parse(hash.spending ?? 'null') as { instance: string } | null
    assert.equal(marker?.instance, 'p1', `account ${id}: a stored refresh token was lost without a refresh in flight at the kill`)
    inFlight.add(id)
  }
  // Every account whose newest token was stored still refreshes; the others are said to need a login, once p1 is known dead.
  for (const id of ids) {
    const response = await fetch(`${p2.url}/accounts/${id}/refresh`, { method: 'POST' })
    const body = await response.text()
    if (!inFlight.has(id)) {
      assert.equal(response.status, 200, `account ${id}: ${body}`)
      continue
    }
    const view = (await (await fetch(`${p2.url}/accounts`)).json() as Array<Record<string, unknown>>).find((entry) => entry.id === id)!
    assert.match(String(view.last_error), /under way when instance p1 stopped|refresh_token_reused/)
  }
  t.diagnostic(`${inFlight.size} rotations were at the issuer when p1 died; ${fake.issuer.refreshCalls} refreshes in all`)
})
