/**
 * Two servers on one auths dir would rotate the same single-use refresh tokens and lose accounts:
 * the second one must refuse to start, say why, and not touch the files.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { fakesForProcess, importTokens, spawnCli, spawnServer } from './server-process.js'

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
