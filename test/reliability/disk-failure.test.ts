/**
 * The disk fails at write time: full, or read-only. A refresh token is never spent while its
 * answer cannot be saved: the request goes to another account, the error is logged and shown on
 * the accounts, nothing on disk is truncated, and the state is written once the disk works again.
 * A rotation that did happen is saved before the process stops, or the stop says it could not.
 *
 * The failures are real filesystem errors, not stubs: the auths dir lives on a tiny tmpfs mounted
 * for the test, filled up (ENOSPC) or remounted read-only (EROFS). Mounting needs root: where it is
 * not permitted these tests fail (they never skip).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { fullDisk, readOnlyDisk, type Disk } from '../helpers/disk.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { fakesForProcess, importTokens, spawnCli, spawnServer } from './server-process.js'

/** The real app with its auths dir on `disk`; the disk is unmounted after the app has closed. */
async function stackOn (t: TestContext, disk: Disk): Promise<Stack> {
  const authsDir = join(disk.dir, 'auths')
  await mkdir(authsDir, { mode: 0o700 })
  let stack: Stack
  try {
    stack = await startStack(t, { authsDir })
  } catch (err) {
    await disk.unmount()
    throw err
  }
  t.after(() => disk.unmount()) // after hooks run in order: startStack's (closing the app) first
  return stack
}

async function accountsOf (stack: Stack): Promise<Array<Record<string, unknown>>> {
  return await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, unknown>>
}

async function storedAccounts (stack: Stack): Promise<Array<{ tokens: { refreshToken: string }, disabledUntil: number | null }>> {
  return (JSON.parse(await readFile(join(stack.authsDir, TOKENS_FILE), 'utf8')) as { accounts: Array<{ tokens: { refreshToken: string }, disabledUntil: number | null }> }).accounts
}

/**
 * Breaks the disk, then sends a turn whose access token was revoked: it would need a refresh,
 * whose rotated token could not be saved. The refresh is not attempted; the other account serves.
 */
async function turnThatNeedsARefresh (t: TestContext, disk: Disk): Promise<{ stack: Stack, code: string, id: string }> {
  const stack = await stackOn(t, disk)
  const account = await stack.addAccount({ email: 'disk@example.com' })
  const other = await stack.addAccount({ email: 'other@example.com' })
  const tokensPath = join(stack.authsDir, TOKENS_FILE)
  const before = { file: await readFile(tokensPath, 'utf8'), backup: await readFile(`${tokensPath}.bak`, 'utf8') }

  const code = await disk.break()
  stack.fake.backend.revokeAccessTokens(account.accountId)
  const response = await postResponses(stack, responsesBody('while the disk fails'))
  assert.equal(response.status, 200, 'the request is still served')
  assert.equal(response.headers.get('x-codex-eq-account'), other.id, 'by the account that needs no refresh')
  assert.match(await response.text(), /served by other@example.com: while the disk fails[\s\S]*response.completed/)
  assert.equal(stack.fake.issuer.refreshCalls, 0, 'no refresh token was spent while its answer could not be saved')

  const message = `could not save the token file: ${code}`
  assert.ok(stack.logs.some((line) => line.level === 50 && line.msg === message), `logged as an error: ${message}`)
  // The writes that follow the turn (the rest, the sticky choice) fail too; they end a moment after the answer.
  const shownBy = Date.now() + 5_000
  while ((await accountsOf(stack)).some((view) => view.last_error !== message) && Date.now() < shownBy) await sleep(50)
  for (const view of await accountsOf(stack)) assert.equal(view.last_error, message, 'shown on every account')
  assert.equal(await readFile(tokensPath, 'utf8'), before.file, 'the file is untouched, not truncated')
  assert.equal(await readFile(`${tokensPath}.bak`, 'utf8'), before.backup, 'the backup is untouched')
  const names = (await readdir(stack.authsDir)).filter((name) => !name.startsWith('.codex-equilibrium.lock'))
  assert.deepEqual(names.sort(), [TOKENS_FILE, `${TOKENS_FILE}.bak`], 'no temp file is left behind')
  return { stack, code, id: account.id }
}

/** Once the disk works again, the unsaved state reaches it without any further request, and the account refreshes. */
async function recoversOnceRepaired (stack: Stack, disk: Disk, id: string): Promise<void> {
  await disk.repair()
  const deadline = Date.now() + 30_000
  while ((await storedAccounts(stack))[0]!.disabledUntil === null) {
    assert.ok(Date.now() < deadline, 'the unsaved state was written after the disk recovered')
    await sleep(200)
  }
  const refresh = await fetch(`${stack.url}/accounts/${id}/refresh`, { method: 'POST' })
  assert.equal(refresh.status, 200, 'the unspent refresh token still works')
  const rotated = stack.fake.accounts[0]!.tokens.refresh_token
  assert.equal((await storedAccounts(stack))[0]!.tokens.refreshToken, rotated, 'and its rotation is on disk')
}

test('disk full at write time: no refresh token is spent, the turn is served, the error is logged and shown, the state lands later', async (t) => {
  const disk = await fullDisk()
  const { stack, id } = await turnThatNeedsARefresh(t, disk)
  await recoversOnceRepaired(stack, disk, id)
  const next = await postResponses(stack, responsesBody('after'))
  assert.equal(next.status, 200)
  await next.text()
})

test('read-only disk at write time: no refresh token is spent, the turn is served, the error is logged and shown, the state lands later', async (t) => {
  const disk = await readOnlyDisk()
  const { stack, id } = await turnThatNeedsARefresh(t, disk)
  await recoversOnceRepaired(stack, disk, id)
})

test('a disk that stays read-only longer than the lock\'s stale time: the server keeps its lock and serves, and a second server is kept out', async (t) => {
  const disk = await readOnlyDisk()
  const { stack, id } = await turnThatNeedsARefresh(t, disk)
  // A lock that cannot be touched for 20 s used to count as lost, and a second process could break it.
  await sleep(23_000)
  assert.ok(!stack.logs.some((line) => /lost the lock/.test(String(line.msg))), 'the lock is not given up')
  const response = await postResponses(stack, responsesBody('still here'))
  assert.equal(response.status, 200)
  assert.match(await response.text(), /still here/)
  await recoversOnceRepaired(stack, disk, id)
  const second = spawnCli(t, ['serve', '--host', '127.0.0.1', '--port', '0'], { CODEX_EQ_AUTHS_DIR: stack.authsDir, CODEX_EQ_ISSUER: stack.fake.issuerUrl, CODEX_EQ_UPSTREAM: stack.fake.backendUrl })
  assert.deepEqual(await second.exited, { code: 2, signal: null }, 'a second server on the same dir still refuses to start')
  assert.match(second.text(), /is in use by another codex-equilibrium process/)
})

test('disk full after a refresh was sent, then SIGTERM: the stop waits for the write, and exits non-zero saying so when it cannot', async (t) => {
  const disk = await fullDisk()
  t.after(() => disk.unmount())
  const { fake, env } = await fakesForProcess(t)
  const authsDir = join(disk.dir, 'auths')
  const server = await spawnServer(t, { env: { ...env, CODEX_EQ_AUTHS_DIR: authsDir } })
  const account = fake.addAccount()
  const id = await importTokens(server.url, account.tokens)
  fake.issuer.delayRefreshMs = 1_000
  const refreshing = fetch(`${server.url}/accounts/${id}/refresh`, { method: 'POST' })
  const deadline = Date.now() + 10_000
  while (fake.issuer.refreshCalls === 0) {
    assert.ok(Date.now() < deadline, 'the refresh reached the issuer')
    await sleep(20)
  }
  await disk.break() // after the check that the state was writable, before the answer arrives
  assert.equal((await refreshing).status, 200, 'the refresh itself succeeded')
  await server.waitForLog((line) => line.msg === 'could not save the token file: ENOSPC')
  process.kill(server.pid, 'SIGTERM')
  const exit = await server.exited
  assert.notEqual(exit.code, 0, 'a stop that loses rotated tokens is not a clean stop')
  assert.ok(server.logs.some((line) => line.level === 60 && /could not be saved/.test(String(line.msg))), 'said loudly, as fatal')
})

test('disk full for a moment after a refresh: the stop waits until the rotated tokens are written, then exits 0', async (t) => {
  const disk = await fullDisk()
  t.after(() => disk.unmount())
  const { fake, env } = await fakesForProcess(t)
  const authsDir = join(disk.dir, 'auths')
  const server = await spawnServer(t, { env: { ...env, CODEX_EQ_AUTHS_DIR: authsDir } })
  const account = fake.addAccount()
  const id = await importTokens(server.url, account.tokens)
  fake.issuer.delayRefreshMs = 1_000
  const refreshing = fetch(`${server.url}/accounts/${id}/refresh`, { method: 'POST' })
  while (fake.issuer.refreshCalls === 0) await sleep(20)
  await disk.break()
  assert.equal((await refreshing).status, 200)
  await server.waitForLog((line) => line.msg === 'could not save the token file: ENOSPC')
  process.kill(server.pid, 'SIGTERM')
  await sleep(1_000)
  await disk.repair()
  assert.deepEqual(await server.exited, { code: 0, signal: null })
  const stored = JSON.parse(await readFile(join(authsDir, TOKENS_FILE), 'utf8')) as { accounts: Array<{ tokens: { refreshToken: string } }> }
  assert.equal(stored.accounts[0]!.tokens.refreshToken, fake.accounts[0]!.tokens.refresh_token, 'the rotated token reached the disk')
})
