/**
 * Faults upstream, against the fakes: a stream dropped mid-way, an upstream that never answers,
 * a storm of 5xx on every account, and a client that reads slowly.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request, type IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { fakesForProcess, importTokens, residentBytes, spawnServer } from './server-process.js'

const MIB = 1024 * 1024

async function accountView (stack: Stack, id: string): Promise<Record<string, unknown>> {
  const accounts = await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, unknown>>
  return accounts.find((view) => view.id === id)!
}

test('a stream dropped mid-way: the client sees the drop, the account records it, the server goes on', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'drop@example.com' })
  stack.fake.backend.script(account.accountId, { kind: 'drop', afterEvents: 3 })
  const response = await postResponses(stack, responsesBody('dropped'))
  assert.equal(response.status, 200, 'the stream had started')
  let received = ''
  const decoder = new TextDecoder()
  await assert.rejects(async () => {
    for await (const chunk of response.body!) received += decoder.decode(chunk as Uint8Array, { stream: true })
  }, 'the client sees the stream break, not a clean end')
  assert.match(received, /response.created/)
  assert.doesNotMatch(received, /response.completed/)

  const view = await accountView(stack, account.id)
  assert.match(String(view.last_error), /^stream broke/)
  assert.equal(view.status, 'active', 'one broken stream does not rest the account')
  assert.ok(stack.logs.some((line) => line.msg === 'upstream stream broke' && line.account === account.id))

  const next = await postResponses(stack, responsesBody('after the drop'))
  assert.equal(next.status, 200)
  assert.match(await next.text(), /served by drop@example.com: after the drop[\s\S]*response.completed/)
})

test('an upstream that never sends headers: one headers timeout, a brief rest, and the next account serves', async (t) => {
  // 1 s, not less: on a busy 2-core machine a real answer can take a few hundred ms to start.
  const stack = await startStack(t, { settings: { upstreamHeadersTimeout: '1s' } })
  const silent = await stack.addAccount({ email: 'silent@example.com' })
  const next = await stack.addAccount({ email: 'next@example.com' })
  stack.fake.backend.script(silent.accountId, { kind: 'hang' }, { kind: 'hang' }, { kind: 'hang' })
  const response = await postResponses(stack, responsesBody('who answers'))
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('x-codex-eq-account'), next.id)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')
  assert.match(await response.text(), /served by next@example.com: who answers/)

  const hung = stack.fake.backend.requests.filter((request) => request.accountId === silent.accountId)
  assert.equal(hung.length, 1, 'a hung upstream is not asked again on the same request')
  assert.ok(hung.every((request) => request.status === 0), 'it was never answered')
  const view = await accountView(stack, silent.id)
  assert.equal(view.status, 'resting')
  assert.equal(view.disabled_source, 'upstream')
  assert.match(String(view.reason), /upstream timed out before answering/)
})

test('a 5xx storm on every account is an outage: bounded attempts, the upstream\'s answer at once, nobody rests, no retry loop', async (t) => {
  const stack = await startStack(t)
  const accounts = [await stack.addAccount(), await stack.addAccount(), await stack.addAccount()]
  for (const account of accounts) {
    stack.fake.backend.script(account.accountId, ...Array.from({ length: 50 }, () => ({ kind: 'status' as const, status: 503 })))
  }
  const response = await postResponses(stack, responsesBody('storm'))
  const body = await response.json() as { detail: string }
  // The upstream's own 503: the Codex CLI retries it by itself; never a usage limit.
  assert.equal(response.status, 503)
  assert.equal(body.detail, 'Service Unavailable')
  assert.equal(response.headers.get('x-codex-eq-outage'), 'http_503')
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')

  const upstreamCalls = (): number[] => accounts.map((account) => stack.fake.backend.requests.filter((request) => request.accountId === account.accountId).length)
  assert.deepEqual(upstreamCalls(), [1, 1, 0], 'two accounts failing alike make an outage: the walk stops')
  assert.equal(stack.fake.issuer.refreshCalls, 0, 'an outage spends no refresh token')
  for (const account of accounts) assert.equal((await accountView(stack, account.id)).status, 'active')

  await sleep(1500)
  assert.deepEqual(upstreamCalls(), [1, 1, 0], 'nothing keeps calling upstream in the background')
  const again = await postResponses(stack, responsesBody('storm again'))
  assert.equal(again.status, 503)
  assert.equal(again.headers.get('x-codex-eq-attempts'), '1', 'one probe while the outage lasts')
  await again.text()
  assert.equal(upstreamCalls().reduce((a, b) => a + b), 3)
})

test('a client that reads slowly: backpressure reaches upstream and the server\'s memory stays flat', async (t) => {
  const { fake, env } = await fakesForProcess(t)
  const server = await spawnServer(t, { env })
  const account = fake.addAccount()
  await importTokens(server.url, account.tokens)
  const total = 192 * MIB
  fake.backend.script(account.accountId, { kind: 'large', bytes: total })

  const body = JSON.stringify(responsesBody('a lot'))
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`${server.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, resolve)
    req.on('error', reject)
    req.end(body)
  })
  assert.equal(response.statusCode, 200)
  response.pause() // and nothing reads it yet
  const baseline = await residentBytes(server.pid)
  const upstream = fake.backend.requests.at(-1)!

  // Not reading at all: the fake's writes stop once the buffers on the way are full.
  await sleep(1500)
  const stalledAt = upstream.bytesSent
  await sleep(1000)
  assert.equal(upstream.bytesSent, stalledAt, 'upstream writes are blocked while the client does not read')
  assert.ok(stalledAt < total / 4, `only the buffers on the way fill up (${Math.round(stalledAt / MIB)} MiB of ${total / MIB})`)

  // Reading slowly for a while (where a proxy without backpressure would buffer what upstream
  // sends), then at full speed to the end.
  let received = 0
  let tail = ''
  let peak = await residentBytes(server.pid)
  const take = (chunk: Buffer): void => {
    received += chunk.length
    tail = (tail + chunk.toString('latin1')).slice(-4096)
  }
  const slowUntil = Date.now() + 3000
  while (Date.now() < slowUntil) {
    const chunk = response.read(64 * 1024) as Buffer | null // ~3 MiB/s
    if (chunk !== null) take(chunk)
    await sleep(20)
    peak = Math.max(peak, await residentBytes(server.pid))
  }
  const slowlyRead = received
  const sentMeanwhile = upstream.bytesSent
  const ended = new Promise<void>((resolve) => response.once('end', resolve))
  response.on('data', take)
  response.resume()
  await ended
  assert.ok(received > total, `the whole stream arrived (${received} bytes)`)
  assert.match(tail, /event: response.completed/)
  const growth = peak - baseline
  t.diagnostic(`server RSS ${Math.round(baseline / MIB)} MiB before, at most ${Math.round(peak / MIB)} MiB while the client read ${Math.round(slowlyRead / MIB)} MiB slowly; upstream had sent ${Math.round(sentMeanwhile / MIB)} MiB by then (stalled at ${Math.round(stalledAt / MIB)} MiB while not reading)`)
  assert.ok(sentMeanwhile - slowlyRead < total / 4, 'upstream only ran ahead of the slow reader by the buffers on the way')
  assert.ok(growth < 32 * MIB, `the server's memory stays flat (grew ${Math.round(growth / MIB)} MiB)`)
})
