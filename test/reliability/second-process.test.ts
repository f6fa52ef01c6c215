/**
 * Two servers on one auths dir would rotate the same single-use refresh tokens and lose accounts:
 * the second one must refuse to start, say why, and not touch the files.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { hostname } from 'node:os'
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { fakesForProcess, importTokens, spawnCli, spawnServer, type ServerProcess } from './server-process.js'

async function fingerprint (path: string): Promise<{ bytes: string, ino: number, mtimeMs: number }> {
  const info = await stat(path)
  return { bytes: await readFile(path, 'utf8'), ino: info.ino, mtimeMs: info.mtimeMs }
}

test('a second server on the same auths dir refuses to start with a clear message and leaves the files alone', async (t) => {
  const { fake, authsDir, env } = await fakesForProcess(t)
  const first = await spawnServer(t, { env })
  await importTokens(first.url, fake.addAccount().tokens)
  await importTokens(first.url, fake.addAccount().tokens)
  const tokensPath = join(authsDir, TOKENS_FILE)
  const before = { file: await fingerprint(tokensPath), backup: await fingerprint(`${tokensPath}.bak`) }
  const refreshesBefore = fake.issuer.refreshCalls

  const second = spawnCli(t, ['serve', '--host', '127.0.0.1', '--port', '0'], env)
  assert.deepEqual(await second.exited, { code: 2, signal: null })
  assert.equal(second.text(), `codex-eq: ${authsDir} is in use by another codex-equilibrium process; stop it first (two processes would rotate the same refresh tokens)\n`)
  assert.equal(second.logs.filter((line) => /listening/.test(String(line.msg))).length, 0, 'it never listened')
  assert.deepEqual({ file: await fingerprint(tokensPath), backup: await fingerprint(`${tokensPath}.bak`) }, before, 'neither the file nor its backup was touched')
  assert.equal(fake.issuer.refreshCalls, refreshesBefore, 'no refresh token was used')

  const health = await fetch(`${first.url}/healthz`)
  assert.deepEqual(await health.json(), { status: 'ok', accounts: 2, usable: 2 }, 'the first server is unaffected')

  process.kill(first.pid, 'SIGTERM')
  assert.deepEqual(await first.exited, { code: 0, signal: null })
  const third = await spawnServer(t, { env })
  assert.equal((await (await fetch(`${third.url}/healthz`)).json() as { accounts: number }).accounts, 2, 'once the first has stopped, a new one starts on the same dir')
})

test('a holder that is alive but frozen still keeps a second server out; once it is killed, a new one starts at once', async (t) => {
  const { env } = await fakesForProcess(t)
  const first = await spawnServer(t, { env })
  // Stopped, it cannot refresh its lock; what keeps the second out is that its owner is alive.
  process.kill(first.pid, 'SIGSTOP')
  const second = spawnCli(t, ['serve', '--host', '127.0.0.1', '--port', '0'], env)
  assert.deepEqual(await second.exited, { code: 2, signal: null })
  assert.match(second.text(), /is in use by another codex-equilibrium process/)

  process.kill(first.pid, 'SIGKILL')
  await first.exited
  const third = await spawnServer(t, { env })
  assert.equal((await fetch(`${third.url}/healthz`)).status, 200)
})

/** The pid of a process that has just exited (nothing else is likely to get it within the test). */
async function deadPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(child, 'exit')
  return child.pid!
}

const LOCK = '.codex-equilibrium.lock'

test('a fresh lock whose holder has not yet written its record is never broken, even beside an old record naming a dead pid', async (t) => {
  const { authsDir, env } = await fakesForProcess(t)
  await mkdir(join(authsDir, LOCK), { recursive: true, mode: 0o700 }) // a holder between its mkdir and its record
  await writeFile(join(authsDir, `${LOCK}.owner`), JSON.stringify({ pid: await deadPid(), host: hostname() })) // where older versions kept it
  const second = spawnCli(t, ['serve', '--host', '127.0.0.1', '--port', '0'], env)
  assert.deepEqual(await second.exited, { code: 2, signal: null })
  assert.match(second.text(), /is in use by another codex-equilibrium process/)
})

test('a lock whose recorded owner is dead is taken over at once', async (t) => {
  const { authsDir, env } = await fakesForProcess(t)
  await mkdir(join(authsDir, LOCK), { recursive: true, mode: 0o700 })
  await writeFile(join(authsDir, LOCK, 'owner.json'), JSON.stringify({ pid: await deadPid(), host: hostname(), nonce: 'x' }))
  const server = await spawnServer(t, { env })
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200)
})

/** Starts two servers at once; resolves with the one that listens, after the other has exited 2. */
async function raceTwo (t: Parameters<typeof spawnCli>[0], env: Record<string, string>): Promise<ServerProcess> {
  const racers = [0, 1].map(() => spawnCli(t, ['serve', '--host', '127.0.0.1', '--port', '0'], env))
  const outcomes = await Promise.all(racers.map(async (racer) => await Promise.race([
    racer.waitForLog((line) => /^codex-equilibrium listening on /.test(String(line.msg)), 20_000).then(() => 'listening' as const, () => 'failed' as const),
    racer.exited.then((exit) => exit.code === 2 ? 'refused' as const : 'failed' as const)
  ])))
  assert.deepEqual([...outcomes].sort(), ['listening', 'refused'], `exactly one of two racing starts serves: ${racers.map((r) => r.text()).join(' | ')}`)
  return racers[outcomes.indexOf('listening')]!
}

test('kill -9, then two starts at once: exactly one serves, every time', async (t) => {
  const { env } = await fakesForProcess(t)
  let holder = await spawnServer(t, { env })
  for (let round = 0; round < 4; round++) {
    process.kill(holder.pid, 'SIGKILL')
    await holder.exited
    holder = await raceTwo(t, env)
  }
})

test('a server whose lock is taken away stops using the tokens and exits non-zero', async (t) => {
  const { fake, authsDir, env } = await fakesForProcess(t)
  const server = await spawnServer(t, { env })
  await importTokens(server.url, fake.addAccount().tokens)
  await rm(join(authsDir, LOCK), { recursive: true, force: true })
  const exit = await Promise.race([server.exited, new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('still running 15 s after losing its lock')), 15_000).unref())])
  assert.equal(exit.code, 1, 'systemd restarts a service that failed')
  assert.ok(server.logs.some((line) => line.level === 60 && /lost the lock/.test(String(line.msg))), 'said as fatal')
})

test('a start that fails (port busy) leaves no lock behind', async (t) => {
  const { authsDir, env } = await fakesForProcess(t)
  const busy = createServer()
  busy.listen(0, '127.0.0.1')
  await once(busy, 'listening')
  t.after(() => busy.close())
  const port = (busy.address() as { port: number }).port
  const failed = spawnCli(t, ['serve', '--host', '127.0.0.1', '--port', String(port)], env)
  assert.deepEqual(await failed.exited, { code: 2, signal: null })
  assert.match(failed.text(), /cannot listen: .*EADDRINUSE/)
  assert.deepEqual((await readdir(authsDir)).filter((name) => name.startsWith(LOCK)), [], 'no lock or owner record left')
})
