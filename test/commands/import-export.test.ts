import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { codexAuthJson } from '../fakes/index.js'
import { startStack, tempDir } from '../helpers/stack.js'
import { runCli } from './run-cli.js'

const ADMIN = 'admin-token-for-import-tests'

interface View { id: string, email: string }

test('import several auth.json files, export one, and the exported file imports again', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  const dir = await tempDir(t)
  const authsDir = join(dir, 'auths')
  const first = stack.fake.addAccount({ email: 'first@example.com', plan: 'pro' })
  const second = stack.fake.addAccount({ email: 'second@example.com' })
  const files = [join(dir, 'first.json'), join(dir, 'second.json')]
  await writeFile(files[0]!, JSON.stringify(codexAuthJson(first.tokens)), { mode: 0o600 })
  await writeFile(files[1]!, JSON.stringify(codexAuthJson(second.tokens)), { mode: 0o600 })

  const imported = await runCli(t, ['import', ...files, '--auths-dir', authsDir])
  assert.equal(imported.code, 0, imported.stderr)
  assert.match(imported.stderr, /must stop using it/, 'the warning about shared refresh tokens')
  const lines = imported.stdout.trim().split('\n')
  assert.equal(lines.length, 2)
  assert.match(lines[0]!, new RegExp(`^added account (\\w+): first@example\\.com \\(pro\\) from ${files[0]}$`))
  assert.match(lines[1]!, /^added account \w+: second@example\.com \(plus\) from /)
  const firstId = /^added account (\w+):/.exec(lines[0]!)![1]!

  const out = join(dir, 'exported', 'auth.json')
  const missingDir = await runCli(t, ['export', firstId, '--out', out, '--auths-dir', authsDir])
  assert.equal(missingDir.code, 1)
  assert.match(missingDir.stderr, /cannot write .*ENOENT/)
  const target = join(dir, 'auth.json')
  const exported = await runCli(t, ['export', 'first@example.com', '--out', target, '--auths-dir', authsDir])
  assert.equal(exported.code, 0, exported.stderr)
  assert.equal(exported.stdout, `wrote account ${firstId}: first@example.com (pro) to ${target}\n`)
  assert.equal((await stat(target)).mode & 0o777, 0o600)
  const file = JSON.parse(await readFile(target, 'utf8')) as Record<string, unknown>
  assert.deepEqual(Object.keys(file).sort(), ['OPENAI_API_KEY', 'auth_mode', 'last_refresh', 'tokens'])
  assert.equal(file.auth_mode, 'chatgpt')
  assert.equal(file.OPENAI_API_KEY, null)
  assert.deepEqual(file.tokens, {
    id_token: first.tokens.id_token,
    access_token: first.tokens.access_token,
    refresh_token: first.tokens.refresh_token,
    account_id: first.accountId
  })

  const before = await readFile(target)
  const again = await runCli(t, ['export', firstId, '--out', target, '--auths-dir', authsDir])
  assert.equal(again.code, 1)
  assert.equal(again.stderr, `codex-eq: ${target} already exists; pass --force to replace it\n`)
  assert.deepEqual(await readFile(target), before, 'not overwritten')
  const forced = await runCli(t, ['export', firstId, '--out', target, '--force', '--auths-dir', authsDir])
  assert.equal(forced.code, 0, forced.stderr)
  assert.equal((await stat(target)).mode & 0o777, 0o600)

  const intoServer = await runCli(t, ['import', target, '--server', stack.url], { CODEX_EQ_ADMIN_TOKEN: ADMIN })
  assert.equal(intoServer.code, 0, intoServer.stderr)
  assert.match(intoServer.stdout, new RegExp(`^added account ${firstId}: first@example\\.com \\(pro\\) from `))
  const listed = await fetch(`${stack.url}/accounts`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const text = await listed.text()
  assert.deepEqual((JSON.parse(text) as View[]).map((view) => view.id), [firstId], 'the same account, by the same id')
  assert.ok(!text.includes(first.tokens.refresh_token) && !text.includes(first.tokens.access_token), 'the API shows no token')

  const stdout = await runCli(t, ['export', firstId, '--out', '-', '--auths-dir', authsDir])
  assert.deepEqual(JSON.parse(stdout.stdout), JSON.parse(await readFile(target, 'utf8')), '--out - prints the same file')
})

test('import reports each bad file, imports the good ones and exits 1', async (t) => {
  const stack = await startStack(t)
  const dir = await tempDir(t)
  const good = join(dir, 'good.json')
  const notJson = join(dir, 'broken.json')
  const apiKey = join(dir, 'api-key.json')
  const account = stack.fake.addAccount({ email: 'good@example.com' })
  await writeFile(good, JSON.stringify(codexAuthJson(account.tokens)))
  await writeFile(notJson, '{"tokens": ')
  await writeFile(apiKey, JSON.stringify({ OPENAI_API_KEY: 'sk-not-a-login' }))
  const run = await runCli(t, ['import', notJson, good, apiKey, join(dir, 'missing.json'), '--server', stack.url])
  assert.equal(run.code, 1)
  assert.match(run.stdout, /^added account \w+: good@example\.com/)
  assert.match(run.stderr, new RegExp(`${notJson}: not JSON`))
  assert.match(run.stderr, new RegExp(`${apiKey}: this auth.json holds an API key, not a ChatGPT login`))
  assert.match(run.stderr, /missing\.json: cannot read it \(ENOENT\)/)
  assert.match(run.stderr, /3 of 4 files were not imported/)
  const accounts = await (await fetch(`${stack.url}/accounts`)).json() as View[]
  assert.deepEqual(accounts.map((view) => view.email), ['good@example.com'])
})

test('export names an unknown account and writes nothing', async (t) => {
  const dir = await tempDir(t)
  const run = await runCli(t, ['export', 'nobody@example.com', '--out', join(dir, 'auth.json'), '--auths-dir', join(dir, 'auths')])
  assert.equal(run.code, 1)
  assert.equal(run.stderr, 'codex-eq: no account "nobody@example.com"; see codex-eq accounts list\n')
  await assert.rejects(stat(join(dir, 'auth.json')))
})

test('import: the same file again changes nothing; a file older than the pool\'s tokens is refused unless --force', async (t) => {
  const stack = await startStack(t)
  const dir = await tempDir(t)
  const authsDir = join(dir, 'auths')
  const account = stack.fake.addAccount({ email: 'older@example.com' })
  const file = join(dir, 'auth.json')
  await writeFile(file, JSON.stringify(codexAuthJson(account.tokens)), { mode: 0o600 })
  assert.equal((await runCli(t, ['import', file, '--auths-dir', authsDir])).code, 0)

  const again = await runCli(t, ['import', file, '--auths-dir', authsDir])
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, /^already up to date: account \w+: older@example\.com/)

  const refreshed = await runCli(t, ['accounts', 'refresh', 'older@example.com', '--auths-dir', authsDir, '--issuer', stack.fake.issuerUrl])
  assert.equal(refreshed.code, 0, refreshed.stderr)
  const stale = await runCli(t, ['import', file, '--auths-dir', authsDir])
  assert.equal(stale.code, 1)
  assert.match(stale.stderr, /auth\.json: these tokens are older than the pool's for this account: its refresh token was already used by the pool/)
  const forced = await runCli(t, ['import', file, '--force', '--auths-dir', authsDir])
  assert.equal(forced.code, 0, forced.stderr)
  assert.match(forced.stdout, /^updated account /)
})
