import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { codexAuthJson, startFakeOpenAI } from '../fakes/index.js'
import { startStack, tempDir } from '../helpers/stack.js'
import { runCli } from './run-cli.js'

const ADMIN = 'admin-token-for-accounts-tests'

interface View { id: string, email: string, expire: string, current: boolean, token: string }

test('accounts list, refresh and remove work on the local auths dir', async (t) => {
  const fake = await startFakeOpenAI()
  t.after(() => fake.close())
  const dir = await tempDir(t)
  const authsDir = join(dir, 'auths')
  const one = fake.addAccount({ email: 'one@example.com' })
  const two = fake.addAccount({ email: 'two@example.com', plan: 'team' })
  for (const [name, account] of [['one', one], ['two', two]] as const) await writeFile(join(dir, `${name}.json`), JSON.stringify(codexAuthJson(account.tokens)))
  assert.equal((await runCli(t, ['import', join(dir, 'one.json'), join(dir, 'two.json'), '--auths-dir', authsDir])).code, 0)

  const table = await runCli(t, ['accounts', '--auths-dir', authsDir])
  assert.equal(table.code, 0, table.stderr)
  const rows = table.stdout.trimEnd().split('\n')
  assert.match(rows[0]!, /^ +ID +EMAIL +PLAN +STATUS +EXPIRES$/)
  assert.match(rows[1]!, /^\* \w{12} one@example\.com plus +active /)
  assert.match(rows[2]!, /^ {2}\w{12} two@example\.com team +active /)

  const json = JSON.parse((await runCli(t, ['accounts', 'list', '--json', '--auths-dir', authsDir])).stdout) as View[]
  assert.deepEqual(json.map((view) => view.email), ['one@example.com', 'two@example.com'])

  const refreshed = await runCli(t, ['accounts', 'refresh', 'two@example.com', '--auths-dir', authsDir, '--issuer', fake.issuerUrl])
  assert.equal(refreshed.code, 0, refreshed.stderr)
  assert.match(refreshed.stdout, new RegExp(`^refreshed account ${json[1]!.id}: two@example\\.com \\(team\\): access token valid until \\d{4}-`))
  assert.equal(fake.issuer.refreshCalls, 1)
  const after = JSON.parse((await runCli(t, ['accounts', 'list', '--json', '--auths-dir', authsDir])).stdout) as View[]
  assert.notEqual(after[1]!.token, json[1]!.token, 'the new access token was stored')

  const removed = await runCli(t, ['accounts', 'remove', json[0]!.id, '--auths-dir', authsDir])
  assert.equal(removed.code, 0, removed.stderr)
  assert.equal(removed.stdout, `removed account ${json[0]!.id}: one@example.com (plus) from ${authsDir}\n`)
  const unknown = await runCli(t, ['accounts', 'remove', 'one@example.com', '--auths-dir', authsDir])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /no account "one@example\.com"/)
  const left = JSON.parse((await runCli(t, ['accounts', 'list', '--json', '--auths-dir', authsDir])).stdout) as View[]
  assert.deepEqual(left.map((view) => view.email), ['two@example.com'])
})

test('accounts --server lists, refreshes and removes through the API with CODEX_EQ_ADMIN_TOKEN', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  const account = await stack.addAccount({ email: 'served@example.com' })
  const env = { CODEX_EQ_ADMIN_TOKEN: ADMIN }
  const list = await runCli(t, ['accounts', 'list', '--server', stack.url], env)
  assert.equal(list.code, 0, list.stderr)
  assert.match(list.stdout, new RegExp(`${account.id} served@example\\.com`))
  const refreshed = await runCli(t, ['accounts', 'refresh', account.id, '--server', stack.url], env)
  assert.equal(refreshed.code, 0, refreshed.stderr)
  assert.equal(stack.fake.issuer.refreshCalls, 1)
  const removed = await runCli(t, ['accounts', 'remove', 'served@example.com', '--server', stack.url], env)
  assert.equal(removed.code, 0, removed.stderr)
  const answer = await fetch(`${stack.url}/accounts`, { headers: { authorization: `Bearer ${ADMIN}` } })
  assert.deepEqual(await answer.json(), [])
  const noToken = await runCli(t, ['accounts', '--server', stack.url])
  assert.equal(noToken.code, 1)
  assert.match(noToken.stderr, /needs its admin token: pass --admin-token or set CODEX_EQ_ADMIN_TOKEN/)
})

test('with a server on the auths dir, accounts can be listed there but changed only through the server', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'held@example.com' })
  const list = await runCli(t, ['accounts', 'list', '--auths-dir', stack.authsDir])
  assert.equal(list.code, 0, list.stderr)
  assert.match(list.stdout, /held@example\.com/)
  const remove = await runCli(t, ['accounts', 'remove', account.id, '--auths-dir', stack.authsDir])
  assert.equal(remove.code, 1)
  assert.match(remove.stderr, /in use by a running codex-eq server; .*--server/)
  assert.equal(((await (await fetch(`${stack.url}/accounts`)).json()) as View[]).length, 1, 'nothing removed')
})

test('every command\'s --help explains it to a newcomer', async (t) => {
  const expectations: Array<[string[], RegExp[]]> = [
    [['--help'], [/login/, /import/, /export/, /accounts/]],
    [['login', '--help'], [/--server <url>/, /--device/, /--no-open/, /--admin-token/, /CODEX_EQ_ADMIN_TOKEN/, /--callback-port/, /--issuer/, /Examples:/]],
    [['import', '--help'], [/auth\.json/, /must stop using it/, /--server/, /Examples:/]],
    [['export', '--help'], [/0600/, /--out/, /--force/, /never leave a server over HTTP/]],
    [['accounts', '--help'], [/list/, /remove/, /refresh/, /Examples:/]],
    [['accounts', 'remove', '--help'], [/<account>/, /--server/]]
  ]
  const runs = await Promise.all(expectations.map(async ([args]) => await runCli(t, args)))
  for (const [index, [args, patterns]] of expectations.entries()) {
    const run = runs[index]!
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`)
    for (const pattern of patterns) assert.match(run.stdout, pattern, args.join(' '))
  }
})
