import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { codexAuthJson, startFakeOpenAI } from '../fakes/index.js'
import { postResponses, startStack, tempDir, type Stack } from '../helpers/stack.js'
import { runCli } from './run-cli.js'

const ADMIN = 'admin-token-for-accounts-tests'

interface View { id: string, email: string, expire: string, current: boolean, token: string, status: string, disabled_until: string | null }

/** One turn through the proxy, whatever its answer. */
async function turn (stack: Stack): Promise<void> {
  await (await postResponses(stack)).text()
}

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
  assert.match(rows[0]!, /^ +ID +EMAIL +PLAN +STATUS +BACK$/)
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
    [['--help'], [/login/, /import/, /export/, /accounts/, /keys/, /usage/, /requests/, /audit/]],
    [['login', '--help'], [/--server <url>/, /--device/, /--no-open/, /--admin-token/, /CODEX_EQ_ADMIN_TOKEN/, /--callback-port/, /--issuer/, /Examples:/]],
    [['import', '--help'], [/auth\.json/, /must stop using it/, /--server/, /Examples:/]],
    [['export', '--help'], [/0600/, /--out/, /--force/, /never leave a server over HTTP/]],
    [['accounts', '--help'], [/list/, /show/, /remove/, /refresh/, /enable/, /select/, /Examples:/]],
    [['accounts', 'remove', '--help'], [/<account>/, /--server/]]
  ]
  const runs = await Promise.all(expectations.map(async ([args]) => await runCli(t, args)))
  for (const [index, [args, patterns]] of expectations.entries()) {
    const run = runs[index]!
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`)
    for (const pattern of patterns) assert.match(run.stdout, pattern, args.join(' '))
  }
})

test('accounts list shows when a resting account comes back (time and "in N min"), not the token expiry; --json for scripts', async (t) => {
  const stack = await startStack(t)
  const resting = await stack.addAccount({ email: 'resting@example.com' })
  await stack.addAccount({ email: 'serving@example.com' })
  stack.fake.backend.setExhausted(resting.accountId, { resetsInSeconds: 29 * 60 + 30 })
  await turn(stack)
  const table = await runCli(t, ['accounts', 'list', '--server', stack.url])
  assert.equal(table.code, 0, table.stderr)
  const [header, first, second] = table.stdout.trimEnd().split('\n')
  assert.match(header!, /^ +ID +EMAIL +PLAN +STATUS +BACK$/)
  assert.match(first!, /^ {2}\w{12} resting@example\.com +plus +cooling \(usage_limit_reached\) +(\d{4}-\d\d-\d\d )?\d\d:\d\d \(in 30 min\)$/)
  assert.match(second!, /^\* \w{12} serving@example\.com +plus +active +-$/)
  assert.doesNotMatch(table.stdout, /\d{4}-\d\d-\d\dT/, 'no ISO token expiry in the table')

  const json = JSON.parse((await runCli(t, ['accounts', 'list', '--json', '--server', stack.url])).stdout) as View[]
  assert.deepEqual(json.map((view) => [view.email, view.status]), [['resting@example.com', 'cooling'], ['serving@example.com', 'active']])
  assert.ok(Date.parse(json[0]!.disabled_until!) > Date.now() + 29 * 60_000)
})

test('accounts enable, select and show: every management action is a command, by id or email, through --server and locally', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com', plan: 'team' })
  stack.fake.backend.setExhausted(first.accountId, { resetsInSeconds: 3600 })
  await turn(stack)
  stack.fake.backend.setExhausted(first.accountId, null)
  const statusOf = async (): Promise<Array<[string, string, boolean]>> =>
    ((await (await fetch(`${stack.url}/accounts`)).json()) as View[]).map((view) => [view.email, view.status, view.current])
  assert.deepEqual(await statusOf(), [['first@example.com', 'cooling', false], ['second@example.com', 'active', true]])

  const enabled = await runCli(t, ['accounts', 'enable', 'FIRST@example.com', '--server', stack.url])
  assert.equal(enabled.code, 0, enabled.stderr)
  assert.equal(enabled.stdout, `enabled account ${first.id}: first@example.com (plus): it serves again\n`)
  const selected = await runCli(t, ['accounts', 'select', first.id, '--server', stack.url])
  assert.equal(selected.code, 0, selected.stderr)
  assert.equal(selected.stdout, `account ${first.id}: first@example.com (plus) is now the current account\n`)
  assert.deepEqual(await statusOf(), [['first@example.com', 'active', true], ['second@example.com', 'active', false]])

  const shown = await runCli(t, ['accounts', 'show', 'second@example.com', '--server', stack.url])
  assert.equal(shown.code, 0, shown.stderr)
  assert.match(shown.stdout, new RegExp(`^id: +${second.id}\n`))
  assert.match(shown.stdout, /^email: +second@example\.com$/m)
  assert.match(shown.stdout, /^plan: +team$/m)
  assert.match(shown.stdout, /^access token: +\S+…\S+, valid until (\d{4}-\d\d-\d\d )?\d\d:\d\d \(in (59 min|1 h 0 min)\)$/m)
  const shownJson = JSON.parse((await runCli(t, ['accounts', 'show', second.id, '--json', '--server', stack.url])).stdout) as View
  assert.equal(shownJson.email, 'second@example.com')

  // The same on the local auths dir once the server is gone; a resting account cannot be selected.
  stack.fake.backend.setExhausted(second.accountId, { resetsInSeconds: 3600 })
  await runCli(t, ['accounts', 'select', second.id, '--server', stack.url])
  await turn(stack) // first serves
  await stack.app.close()
  const local = ['--auths-dir', stack.authsDir]
  const refused = await runCli(t, ['accounts', 'select', 'second@example.com', ...local])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /^codex-eq: cannot make \w{12} the current account: that account is not usable now/)
  assert.equal(refused.stderr.split('\n').length, 2, 'one line')
  const enabledLocally = await runCli(t, ['accounts', 'enable', 'second@example.com', ...local])
  assert.equal(enabledLocally.code, 0, enabledLocally.stderr)
  const selectedLocally = await runCli(t, ['accounts', 'select', 'second@example.com', ...local])
  assert.equal(selectedLocally.code, 0, selectedLocally.stderr)
  const after = JSON.parse((await runCli(t, ['accounts', 'list', '--json', ...local])).stdout) as View[]
  assert.deepEqual(after.map((view) => [view.email, view.status, view.current]), [['first@example.com', 'active', false], ['second@example.com', 'active', true]])
  const typo = await runCli(t, ['accounts', 'enabel', 'second@example.com', ...local])
  assert.equal(typo.code, 1)
  assert.match(typo.stderr, /^error: unknown command 'enabel' \(commands: list, show, remove, refresh, enable, select, proxy\)/)
  const unknown = await runCli(t, ['accounts', 'enable', 'nobody@example.com', ...local])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /no account "nobody@example\.com"/)
})

test('--server given as either Codex base_url (…/v1, …/backend-api/codex) reaches the management API and never the upstream', async (t) => {
  const stack = await startStack(t)
  const dir = await tempDir(t)
  const person = stack.fake.addAccount({ email: 'via-v1@example.com' })
  await writeFile(join(dir, 'auth.json'), JSON.stringify(codexAuthJson(person.tokens)))
  for (const server of [`${stack.url}/v1`, `${stack.url}/v1/`, `${stack.url}/backend-api/codex`, `${stack.url}/backend-api/codex/`]) {
    const list = await runCli(t, ['accounts', 'list', '--server', server])
    assert.equal(list.code, 0, list.stderr)
    assert.match(list.stdout, /^no accounts in http:\/\/127\.0\.0\.1:\d+;/)
  }
  const imported = await runCli(t, ['import', join(dir, 'auth.json'), '--server', `${stack.url}/v1`])
  assert.equal(imported.code, 0, imported.stderr)
  const refreshed = await runCli(t, ['accounts', 'refresh', 'via-v1@example.com', '--server', `${stack.url}/backend-api/codex`])
  assert.equal(refreshed.code, 0, refreshed.stderr)
  assert.deepEqual(((await (await fetch(`${stack.url}/accounts`)).json()) as View[]).map((view) => view.email), ['via-v1@example.com'])
  assert.equal(stack.fake.backend.requests.length, 0, 'nothing went to the Codex backend')
  const odd = await runCli(t, ['accounts', 'list', '--server', `${stack.url}/?token=x`])
  assert.equal(odd.code, 1)
  assert.match(odd.stderr, /must be just the server's address/)
})

test('a local accounts refresh that fails prints one line for people, not the server\'s log text', async (t) => {
  const fake = await startFakeOpenAI()
  t.after(() => fake.close())
  const dir = await tempDir(t)
  const authsDir = join(dir, 'auths')
  const account = fake.addAccount({ email: 'gone@example.com' })
  await writeFile(join(dir, 'auth.json'), JSON.stringify(codexAuthJson(account.tokens)))
  assert.equal((await runCli(t, ['import', join(dir, 'auth.json'), '--auths-dir', authsDir])).code, 0)

  fake.issuer.failRefresh(account.accountId, 'server_error')
  const transient = await runCli(t, ['accounts', 'refresh', 'gone@example.com', '--auths-dir', authsDir, '--issuer', fake.issuerUrl])
  assert.equal(transient.code, 1)
  assert.match(transient.stderr, /^codex-eq: could not refresh gone@example\.com: .+; its tokens are unchanged, try again later\n$/)
  assert.doesNotMatch(transient.stderr, /will retry/)

  fake.issuer.failRefresh(account.accountId, 'invalidated')
  const permanent = await runCli(t, ['accounts', 'refresh', 'gone@example.com', '--auths-dir', authsDir, '--issuer', fake.issuerUrl])
  assert.equal(permanent.code, 1)
  assert.equal(permanent.stderr, 'codex-eq: gone@example.com needs a new sign-in: the issuer refused its refresh token (refresh_token_invalidated); sign in again with codex-eq login\n')
  assert.equal(permanent.stdout, '')
})
