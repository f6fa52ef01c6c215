import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { StoreError, TOKENS_FILE, TokenStore, emptyStore, type StoreData } from '../../../src/store/file-store.js'
import { newAccount, type Account } from '../../../src/store/records.js'
import { tempDir } from '../../helpers/stack.js'
import { tokenSetFor } from '../../helpers/tokens.js'

function account (n: number, padding = ''): Account {
  const tokens = tokenSetFor({ accountId: `acct${n}`, email: `user${n}@example.com`, serial: n })
  return { ...newAccount({ id: `id${n}`, email: `user${n}@example.com${padding}`, accountId: `acct${n}`, userId: null, plan: 'plus', tokens, addedAt: 0 }), requests: n }
}

function state (...ns: number[]): StoreData {
  return { version: 1, sticky: ns.length > 0 ? `id${ns[0]}` : null, accounts: ns.map((n) => account(n)) }
}

async function openStore (t: { after: (fn: () => Promise<void>) => void }, dir: string): Promise<TokenStore> {
  const store = new TokenStore(dir)
  await store.open()
  t.after(() => store.close())
  return store
}

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777

test('the directory it creates is 0700 and the token file 0600', async (t) => {
  const dir = join(await tempDir(t), 'nested', 'auths')
  const store = await openStore(t, dir)
  assert.equal(await mode(dir), 0o700)
  await store.save(state(1))
  assert.equal(await mode(store.path), 0o600)
  await store.save(state(1, 2))
  assert.equal(await mode(store.path), 0o600, 'a replaced file is 0600 too')
  assert.equal(await mode(store.backupPath), 0o600, 'the backup keeps the private mode')
})

test('a save leaves no temp file and keeps the previous state in .bak', async (t) => {
  const dir = await tempDir(t)
  const store = await openStore(t, dir)
  await store.save(state(1))
  await store.save(state(1, 2))
  await store.save(state(1, 2, 3))
  assert.deepEqual(await store.load(), state(1, 2, 3))
  assert.deepEqual(JSON.parse(await readFile(store.backupPath, 'utf8')), state(1, 2), '.bak holds the state before the last write')
  const names = (await readdir(dir)).filter((name) => !name.startsWith('.codex-equilibrium.lock'))
  assert.deepEqual(names.sort(), [TOKENS_FILE, `${TOKENS_FILE}.bak`], `only the file and its backup: ${names.join(', ')}`)
})

test('a reader never sees a torn file while states are written', async (t) => {
  const dir = await tempDir(t)
  const store = await openStore(t, dir)
  await store.save(state(1))
  // Large states make a non-atomic write (truncate, then write) visible to a concurrent reader.
  const big = (n: number): StoreData => ({ version: 1, sticky: null, accounts: [account(n, 'x'.repeat(400_000))] })
  let writing = true
  let reads = 0
  const reader = (async () => {
    while (writing) {
      const text = await readFile(store.path, 'utf8')
      assert.doesNotThrow(() => JSON.parse(text), `read #${reads} saw a torn file of ${text.length} chars`)
      reads++
    }
  })()
  for (let n = 0; n < 30; n++) await store.save(big(n))
  writing = false
  await reader
  assert.ok(reads > 0)
  assert.equal((await store.load()).accounts[0]!.requests, 29)
})

test('saves issued back to back end with the newest state on disk', async (t) => {
  const store = await openStore(t, await tempDir(t))
  await Promise.all([store.save(state(1)), store.save(state(1, 2)), store.save(state(1, 2, 3))])
  assert.deepEqual(await store.load(), state(1, 2, 3))
})

test('a missing file loads as an empty pool', async (t) => {
  const store = await openStore(t, await tempDir(t))
  assert.deepEqual(await store.load(), emptyStore())
})

for (const [what, content] of [
  ['not JSON', '{"version": 1, "accounts": ['],
  ['JSON of another shape', '{"version": 1, "accounts": {}}'],
  ['an unknown version', '{"version": 7, "sticky": null, "accounts": []}'],
  ['an account without tokens', '{"version": 1, "sticky": null, "accounts": [{"id": "a", "accountId": "b"}]}'],
  ['empty', '']
] as const) {
  test(`a token file that is ${what} makes load() throw a StoreError naming it, and is left as it was`, async (t) => {
    const dir = await tempDir(t)
    const path = join(dir, TOKENS_FILE)
    await writeFile(path, content, { mode: 0o600 })
    const before = await readFile(path)
    const store = new TokenStore(dir)
    await store.open()
    await assert.rejects(store.load(), (err: unknown) => {
      assert.ok(err instanceof StoreError, String(err))
      assert.ok(err.message.includes(path), err.message)
      assert.doesNotMatch(err.message, /\n/, 'one line')
      return true
    })
    await store.close()
    assert.deepEqual(await readFile(path), before, 'byte-identical after the failed load and close')
    assert.deepEqual((await readdir(dir)).filter((name) => name.startsWith(TOKENS_FILE)), [TOKENS_FILE], 'no backup or temp file written')
  })
}

test('an unreadable token file makes load() throw a StoreError naming it', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, TOKENS_FILE)
  // A directory where the file should be cannot be read even by root.
  await mkdir(path)
  await writeFile(join(path, 'inside'), 'x')
  const store = await openStore(t, dir)
  await assert.rejects(store.load(), (err: unknown) => err instanceof StoreError && err.message.includes(path) && /EISDIR/.test(err.message))
  assert.deepEqual(await readdir(path), ['inside'], 'left alone')
})

test('a second open() on the same directory is refused while the first holds it', async (t) => {
  const dir = await tempDir(t)
  const first = new TokenStore(dir)
  await first.open()
  const second = new TokenStore(dir)
  await assert.rejects(second.open(), (err: unknown) => err instanceof StoreError && err.message.includes(dir) && /in use/.test(err.message))
  await first.close()
  await second.open()
  await second.close()
})

test('a file changed by another program while running is kept aside, not silently overwritten', async (t) => {
  const dir = join(await tempDir(t), 'auths')
  const store = await openStore(t, dir)
  await store.load()
  await store.save(state(1))
  const foreign = JSON.stringify(state(1, 2)) + '\n'
  await writeFile(join(dir, TOKENS_FILE), foreign)
  const kept: string[] = []
  store.onConflict = (path) => kept.push(path)
  await store.save(state(3))
  assert.equal(kept.length, 1)
  assert.equal(await readFile(kept[0]!, 'utf8'), foreign, 'the other program\'s version survives')
  assert.equal((await stat(kept[0]!)).mode & 0o777, 0o600)
  assert.deepEqual((JSON.parse(await readFile(join(dir, TOKENS_FILE), 'utf8')) as StoreData).accounts.map((a) => a.id), state(3).accounts.map((a) => a.id))
  await store.save(state(4))
  assert.equal(kept.length, 1, 'our own writes are not conflicts')
  assert.ok((await readdir(dir)).filter((name) => name.includes('.conflict-')).length === 1)
})

test('a loose auths dir and token files are made private at start, with a warning; the .bak is never looser', async (t) => {
  const dir = await tempDir(t)
  await chmod(dir, 0o777)
  const path = join(dir, TOKENS_FILE)
  await writeFile(path, JSON.stringify(state(1)), { mode: 0o644 })
  await chmod(path, 0o644)
  await writeFile(`${path}.bak`, JSON.stringify(state(1)), { mode: 0o644 })
  await chmod(`${path}.bak`, 0o644)
  const warnings: string[] = []
  const store = new TokenStore(dir, { onWarning: (message) => warnings.push(message) })
  await store.open()
  t.after(() => store.close())
  assert.equal(await mode(dir), 0o700)
  assert.equal(await mode(path), 0o600)
  assert.equal(await mode(`${path}.bak`), 0o600)
  assert.equal(warnings.length, 3, warnings.join('\n'))
  assert.match(warnings[0]!, /was readable by others \(mode 0777\).*made 0700/)
  await store.load()
  await store.save(state(1, 2))
  assert.equal(await mode(`${path}.bak`), 0o600, 'the first write leaves a private .bak')
})

test('a private auths dir opens without a warning', async (t) => {
  const dir = await tempDir(t)
  await chmod(dir, 0o700)
  const warnings: string[] = []
  const store = new TokenStore(dir, { onWarning: (message) => warnings.push(message) })
  await store.open()
  t.after(() => store.close())
  assert.deepEqual(warnings, [])
})

test('a symlinked token file is refused with a clear message, and its target is left alone', async (t) => {
  const dir = await tempDir(t)
  const target = join(await tempDir(t), 'real-tokens.json')
  await writeFile(target, JSON.stringify(state(1)), { mode: 0o600 })
  await symlink(target, join(dir, TOKENS_FILE))
  const store = new TokenStore(dir)
  await assert.rejects(store.open(), (err: unknown) => err instanceof StoreError && /is a symbolic link/.test(err.message))
  assert.equal(await readFile(target, 'utf8'), JSON.stringify(state(1)))
  const again = new TokenStore(dir)
  await assert.rejects(again.open(), /symbolic link/, 'the refused open left no lock behind that would say "in use"')
})

test('a hand-edited file with a wrongly typed field is refused at load, naming the field', async (t) => {
  const cases: Array<[string, (a: Record<string, unknown>) => void, RegExp]> = [
    ['quota', (a) => { a.quota = 'x' }, /"quota" .*not a JSON object/],
    ['disabledUntil', (a) => { a.disabledUntil = 1e308 }, /"disabledUntil" is not a time/],
    ['requests', (a) => { a.requests = -1 }, /"requests" is not a count/],
    ['needsLogin', (a) => { a.needsLogin = 'yes' }, /"needsLogin" is not true or false/],
    ['tokens.refreshToken', (a) => { (a.tokens as Record<string, unknown>).refreshToken = 12345 }, /"tokens.refreshToken" is not a non-empty string/],
    ['email', (a) => { a.email = 42 }, /"email" is not a string or null/]
  ]
  for (const [field, spoil, message] of cases) {
    const dir = await tempDir(t)
    const data = JSON.parse(JSON.stringify(state(1))) as { accounts: Array<Record<string, unknown>> }
    spoil(data.accounts[0]!)
    await writeFile(join(dir, TOKENS_FILE), JSON.stringify(data), { mode: 0o600 })
    const store = await openStore(t, dir)
    await assert.rejects(store.load(), (err: unknown) => err instanceof StoreError && message.test(err.message), field)
  }
})

test('an older file without the newer optional fields still loads', async (t) => {
  const dir = await tempDir(t)
  const { id, accountId, tokens } = account(1)
  await writeFile(join(dir, TOKENS_FILE), JSON.stringify({ version: 1, sticky: null, accounts: [{ id, accountId, tokens }] }), { mode: 0o600 })
  const store = await openStore(t, dir)
  const loaded = await store.load()
  assert.equal(loaded.accounts[0]!.requests, 0)
  assert.equal(loaded.accounts[0]!.needsLogin, false)
  assert.equal(loaded.accounts[0]!.quota, null)
})
