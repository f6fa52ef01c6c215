/**
 * SIGTERM, as systemd sends it: stop accepting, let open streams finish within the grace period
 * (`--shutdown-grace`), cut what is still open after it, write the state, exit 0.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { TOKENS_FILE, type StoreData } from '../../src/store/file-store.js'
import type { FakeOpenAI } from '../fakes/index.js'
import { responsesBody } from '../helpers/stack.js'
import { fakesForProcess, importTokens, spawnServer, type ServerProcess } from './server-process.js'

interface OpenStream {
  status: number
  /** Everything received, once the stream has ended one way or the other. */
  done: Promise<{ text: string, complete: boolean }>
}

/**
 * Starts a turn with fetch, which keeps its connection alive afterwards like the Codex CLI does,
 * and resolves once the headers have arrived; the body keeps coming.
 */
async function openStream (url: string, text: string): Promise<OpenStream> {
  const response = await fetch(`${url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(responsesBody(text)) })
  const done = (async () => {
    let received = ''
    const decoder = new TextDecoder()
    try {
      for await (const chunk of response.body!) received += decoder.decode(chunk as Uint8Array, { stream: true })
    } catch {
      return { text: received, complete: false }
    }
    return { text: received, complete: true }
  })()
  return { status: response.status, done }
}

/** True once connections to `url` are refused (the listener closes a moment after the signal). */
async function refusedSoon (url: string): Promise<boolean> {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })
      await response.arrayBuffer()
    } catch (err) {
      if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') return true
    }
    await sleep(100)
  }
  return false
}

async function serverWithAccount (t: TestContext, grace: string): Promise<{ server: ServerProcess, fake: FakeOpenAI, accountId: string, authsDir: string }> {
  const { fake, authsDir, env } = await fakesForProcess(t)
  const server = await spawnServer(t, { args: ['--shutdown-grace', grace], env })
  const account = fake.addAccount({ email: 'stop@example.com' })
  await importTokens(server.url, account.tokens)
  return { server, fake, accountId: account.accountId, authsDir }
}

test('SIGTERM: new connections are refused, the open stream finishes, the state is written, exit 0', async (t) => {
  const { server, fake, accountId, authsDir } = await serverWithAccount(t, '20s')
  fake.backend.script(accountId, { kind: 'slow', eventDelayMs: 200 })
  const stream = await openStream(server.url, 'slow turn')
  assert.equal(stream.status, 200)

  process.kill(server.pid, 'SIGTERM')
  await server.waitForLog((line) => line.msg === 'stopping: letting open streams finish')
  assert.ok(await refusedSoon(server.url), 'no new connection is accepted once stopping')
  const { text, complete } = await stream.done
  assert.ok(complete, 'the open stream ran to its end')
  assert.match(text, /served by stop@example.com: slow turn[\s\S]*event: response.completed/)
  assert.deepEqual(await server.exited, { code: 0, signal: null })
  const stored = JSON.parse(await readFile(join(authsDir, TOKENS_FILE), 'utf8')) as StoreData
  assert.equal(stored.accounts[0]!.requests, 1, 'the turn is counted in the stored state')
  assert.ok(server.logs.some((line) => line.msg === 'stopped'))
  assert.ok(!server.logs.some((line) => /grace period over/.test(String(line.msg))), 'it stopped when the stream ended, not at the end of the grace (the client kept its connection alive)')
})

test('SIGTERM right after a turn: the usage counters not yet written are written before exit', async (t) => {
  const { server, authsDir } = await serverWithAccount(t, '5s')
  for (let i = 0; i < 3; i++) {
    const response = await fetch(`${server.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(responsesBody(`turn ${i}`)) })
    await response.text()
  }
  process.kill(server.pid, 'SIGTERM')
  assert.deepEqual(await server.exited, { code: 0, signal: null })
  const stored = JSON.parse(await readFile(join(authsDir, TOKENS_FILE), 'utf8')) as StoreData
  assert.equal(stored.accounts[0]!.requests, 3)
})

test('SIGTERM with a stream longer than the grace period: the stream is cut at the end of the grace, and the exit is still 0', async (t) => {
  const { server, fake, accountId } = await serverWithAccount(t, '1s')
  fake.backend.script(accountId, { kind: 'slow', eventDelayMs: 2000 }) // a dozen events: over 20 s
  const stream = await openStream(server.url, 'endless turn')
  const signalled = Date.now()
  process.kill(server.pid, 'SIGTERM')
  const { text, complete } = await stream.done
  assert.equal(complete, false, 'the client sees the stream cut')
  assert.doesNotMatch(text, /response.completed/)
  assert.deepEqual(await server.exited, { code: 0, signal: null })
  assert.ok(Date.now() - signalled < 15_000, 'it did not wait for the stream to end')
  assert.ok(server.logs.some((line) => line.msg === 'grace period over: closing the remaining connections'))
})
