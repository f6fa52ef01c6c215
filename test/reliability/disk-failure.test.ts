/**
 * The disk fails at write time: full, or read-only. The request that caused the write is still
 * served, the error is logged and shown on the accounts, nothing on disk is truncated, and the
 * state is written once the disk works again.
 *
 * The failures are real filesystem errors, not stubs: the auths dir lives on a tiny tmpfs mounted
 * for the test, filled up (ENOSPC) or remounted read-only (EROFS). Mounting needs root; as another
 * user the dir is made read-only with chmod instead (EACCES), which root would ignore.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { postResponses, responsesBody, startStack, tempDir, type Stack } from '../helpers/stack.js'

const run = promisify(execFile)

interface Disk {
  dir: string
  /** Makes writes fail with a real error; returns the errno code expected. */
  break: () => Promise<string>
  repair: () => Promise<void>
  unmount: () => Promise<void>
}

/** A tmpfs of `size` at a fresh dir, or null when this process cannot mount. */
async function mountTmpfs (size: string): Promise<string | null> {
  if (process.getuid?.() !== 0) return null
  const dir = await mkdtemp(join(tmpdir(), 'ceq-disk-'))
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir])
  } catch {
    await rm(dir, { recursive: true, force: true })
    return null
  }
  return dir
}

async function unmount (dir: string): Promise<void> {
  await run('umount', ['-l', dir]).catch(() => {})
  await rm(dir, { recursive: true, force: true })
}

/** A disk that fills up: writes fail with ENOSPC until the filler is removed. */
async function fullDisk (): Promise<Disk | null> {
  const dir = await mountTmpfs('256k')
  if (dir === null) return null
  const filler = join(dir, 'filler')
  return {
    dir,
    async break () {
      await writeFile(filler, Buffer.alloc(1024 * 1024)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOSPC') throw err })
      return 'ENOSPC'
    },
    repair: () => rm(filler, { force: true }),
    unmount: () => unmount(dir)
  }
}

/** A disk that turns read-only: EROFS as root (remount), EACCES otherwise (chmod). */
async function readOnlyDisk (t: TestContext): Promise<Disk | null> {
  const mounted = await mountTmpfs('1m')
  if (mounted !== null) {
    return {
      dir: mounted,
      async break () {
        await run('mount', ['-o', 'remount,ro', mounted])
        return 'EROFS'
      },
      async repair () { await run('mount', ['-o', 'remount,rw', mounted]) },
      unmount: () => unmount(mounted)
    }
  }
  if (process.getuid?.() === 0) return null
  const dir = await tempDir(t, 'ceq-disk-')
  const auths = join(dir, 'auths')
  return {
    dir,
    async break () {
      await chmod(auths, 0o500)
      return 'EACCES'
    },
    async repair () { await chmod(auths, 0o700) },
    async unmount () { await chmod(auths, 0o700).catch(() => {}) }
  }
}

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

async function tokenOnDisk (stack: Stack, index: number): Promise<string> {
  const data = JSON.parse(await readFile(join(stack.authsDir, TOKENS_FILE), 'utf8')) as { accounts: Array<{ tokens: { refreshToken: string } }> }
  return data.accounts[index]!.tokens.refreshToken
}

/**
 * Breaks the disk, then sends a turn whose access token was revoked: serving it rotates the
 * refresh token, which must be written, and the write fails.
 */
async function turnThatMustWrite (t: TestContext, disk: Disk): Promise<{ stack: Stack, code: string, before: { file: string, backup: string }, rotated: string }> {
  const stack = await stackOn(t, disk)
  const account = await stack.addAccount({ email: 'disk@example.com' })
  await stack.addAccount({ email: 'other@example.com' })
  const tokensPath = join(stack.authsDir, TOKENS_FILE)
  const before = { file: await readFile(tokensPath, 'utf8'), backup: await readFile(`${tokensPath}.bak`, 'utf8') }

  const code = await disk.break()
  stack.fake.backend.revokeAccessTokens(account.accountId)
  const response = await postResponses(stack, responsesBody('while the disk fails'))
  assert.equal(response.status, 200, 'the request is still served')
  assert.equal(response.headers.get('x-codex-eq-account'), account.id)
  assert.match(await response.text(), /served by disk@example.com: while the disk fails[\s\S]*response.completed/)
  assert.equal(stack.fake.issuer.refreshCalls, 1)
  const rotated = stack.fake.accounts.find((a) => a.accountId === account.accountId)!.tokens.refresh_token

  const message = `could not save the token file: ${code}`
  assert.ok(stack.logs.some((line) => line.level === 50 && line.msg === message), `logged as an error: ${message}`)
  for (const view of await accountsOf(stack)) assert.equal(view.last_error, message, 'shown on every account')
  assert.equal(await readFile(tokensPath, 'utf8'), before.file, 'the file is untouched, not truncated')
  assert.equal(await readFile(`${tokensPath}.bak`, 'utf8'), before.backup, 'the backup is untouched')
  const names = (await readdir(stack.authsDir)).filter((name) => !name.startsWith('.codex-equilibrium.lock'))
  assert.deepEqual(names.sort(), [TOKENS_FILE, `${TOKENS_FILE}.bak`], 'no temp file is left behind')
  return { stack, code, before, rotated }
}

/** Once the disk works again, the unsaved state (with the rotated refresh token) reaches it without any further request. */
async function writtenOnceRepaired (stack: Stack, disk: Disk, rotated: string): Promise<void> {
  await disk.repair()
  const deadline = Date.now() + 30_000
  while (await tokenOnDisk(stack, 0) !== rotated) {
    assert.ok(Date.now() < deadline, 'the unsaved state was written after the disk recovered')
    await sleep(200)
  }
  JSON.parse(await readFile(join(stack.authsDir, TOKENS_FILE), 'utf8'))
}

test('disk full at write time: the turn is served, the error is logged and shown, nothing is truncated, the state lands later', async (t) => {
  const disk = await fullDisk()
  if (disk === null) return t.skip('mounting a tmpfs needs root with CAP_SYS_ADMIN')
  const { stack, rotated } = await turnThatMustWrite(t, disk)
  await writtenOnceRepaired(stack, disk, rotated)
  const next = await postResponses(stack, responsesBody('after'))
  assert.equal(next.status, 200)
  await next.text()
})

test('read-only disk at write time: the turn is served, the error is logged and shown, nothing is truncated, the state lands later', async (t) => {
  const disk = await readOnlyDisk(t)
  if (disk === null) return t.skip('needs root with mount, or a non-root user for chmod')
  const { stack, rotated } = await turnThatMustWrite(t, disk)
  await writtenOnceRepaired(stack, disk, rotated)
})

test('a disk that stays read-only longer than the lock\'s stale time does not bring the server down', async (t) => {
  const disk = await readOnlyDisk(t)
  if (disk === null) return t.skip('needs root with mount, or a non-root user for chmod')
  const { stack, code, rotated } = await turnThatMustWrite(t, disk)
  // The directory lock is refreshed every 5 s and counts as lost after 20 s without a refresh;
  // on a read-only filesystem the refresh fails too (with chmod, it does not).
  await sleep(23_000)
  if (code === 'EROFS') {
    assert.ok(stack.logs.some((line) => line.level === 50 && /^lost the lock on /.test(String(line.msg))), 'the lost lock is logged')
  }
  const response = await postResponses(stack, responsesBody('still here'))
  assert.equal(response.status, 200)
  assert.match(await response.text(), /still here/)
  await writtenOnceRepaired(stack, disk, rotated)
})
