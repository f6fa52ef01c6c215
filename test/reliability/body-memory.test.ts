/**
 * Big request bodies and memory: bodies are held whole (failover may send them again), at most
 * --max-buffered of them at once, and once they are done the memory goes back close to idle.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { collectGarbage, fakesForProcess, INSPECT_FLAG, residentBytes, spawnServer } from './server-process.js'

const MIB = 1024 * 1024

test('8 concurrent 40 MiB bodies: memory stays bounded and returns close to idle once they are done', async (t) => {
  const { env } = await fakesForProcess(t)
  const server = await spawnServer(t, { env, nodeFlags: [INSPECT_FLAG] })
  const idle = await residentBytes(server.pid)
  let peak = idle
  const sampler = setInterval(() => { residentBytes(server.pid).then((rss) => { peak = Math.max(peak, rss) }, () => {}) }, 20)
  t.after(() => clearInterval(sampler))
  const body = Buffer.alloc(40 * MIB, 'a')
  for (let round = 0; round < 2; round++) {
    // No account: each body is read in full, then answered at once.
    const statuses = await Promise.all(Array.from({ length: 8 }, async () => {
      const response = await fetch(`${server.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      await response.text()
      return response.status
    }))
    assert.ok(statuses.every((status) => status === 503), statuses.join(','))
  }
  clearInterval(sampler)
  // Freed bodies go back once V8 collects them, at a time of its choosing (with no more requests,
  // its idle-time reducer, later on a busy machine). A collection asked for now shows whether
  // anything still holds them; their memory is then given back by a background thread.
  const sent = 8 * 40 * MIB
  await collectGarbage(server)
  let after = await residentBytes(server.pid)
  for (const deadline = Date.now() + 5_000; after - idle >= sent / 3 && Date.now() < deadline;) {
    await sleep(250)
    after = await residentBytes(server.pid)
  }
  assert.ok(peak - idle < 2 * sent, `peak ${Math.round(peak / MIB)} MiB from idle ${Math.round(idle / MIB)} MiB: each body is held once, not twice`)
  assert.ok(after - idle < sent / 3, `after: ${Math.round(after / MIB)} MiB (idle ${Math.round(idle / MIB)} MiB, peak ${Math.round(peak / MIB)} MiB)`)
})
