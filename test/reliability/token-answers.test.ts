/**
 * What the token endpoint may answer besides good tokens, and what each answer may do to an
 * account: a malformed 200 or a bare HTML 401 changes nothing; a refresh whose answer was lost
 * (the token spent, the connection cut) or that hangs ends in "needs login", said once, never in a
 * retry loop.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { startStack, type Stack } from '../helpers/stack.js'

type View = Record<string, any>

const viewOf = async (stack: Stack, id: string): Promise<View> =>
  (await (await fetch(`${stack.url}/accounts`)).json() as View[]).find((v) => v.id === id)!
const refresh = async (stack: Stack, id: string): Promise<Response> => await fetch(`${stack.url}/accounts/${id}/refresh`, { method: 'POST' })
const storedTokens = async (stack: Stack): Promise<unknown> =>
  (JSON.parse(await readFile(join(stack.authsDir, TOKENS_FILE), 'utf8')) as { accounts: Array<{ tokens: unknown }> }).accounts[0]!.tokens

const MALFORMED = ['{"id_token":42}', '{"refresh_token":12345}', '{"refresh_token":""}', '<html>maintenance</html>', '{}', '[]', '{"access_token":"not-a-jwt"}']

test('a 200 from the token endpoint with unusable tokens is a failed refresh that changes nothing', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  const before = await storedTokens(stack)
  for (const body of MALFORMED) {
    stack.fake.issuer.malformRefresh(account.accountId, body)
    const response = await refresh(stack, account.id)
    assert.equal(response.status, 502, `${body}: reported as a failed refresh`)
    assert.match(((await response.json()) as { error: { message: string } }).error.message, /refresh answer is unusable/)
    assert.deepEqual(await storedTokens(stack), before, `${body}: the stored tokens are untouched`)
    assert.notEqual((await viewOf(stack, account.id)).status, 'needs_login')
  }
  await stack.restart()
  assert.equal((await viewOf(stack, account.id)).status, 'active', 'the service starts again with the account')
  stack.fake.issuer.malformRefresh(account.accountId, null)
  assert.equal((await refresh(stack, account.id)).status, 200, 'the kept refresh token still works')
})

test('a bare 401 page from the token endpoint (no error code) is passing trouble, not a dead token', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  stack.fake.issuer.failRefresh(account.accountId, 'bare_401')
  const response = await refresh(stack, account.id)
  assert.equal(response.status, 502)
  assert.notEqual((await viewOf(stack, account.id)).status, 'needs_login')
  stack.fake.issuer.failRefresh(account.accountId, null)
  assert.equal((await refresh(stack, account.id)).status, 200, 'a minute later it refreshes fine')
  assert.equal((await viewOf(stack, account.id)).status, 'active')
})

/** Waits for a lost refresh, then asks again: the issuer says the token was used; the account needs a login, once. */
async function endsInNeedsLogin (stack: Stack, id: string): Promise<void> {
  const second = await refresh(stack, id)
  assert.equal(second.status, 409, 'the spent token is refused for good')
  assert.equal((await viewOf(stack, id)).status, 'needs_login')
  const calls = stack.fake.issuer.refreshCalls
  for (let i = 0; i < 3; i++) await fetch(`${stack.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then(async (r) => await r.text())
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(stack.fake.issuer.refreshCalls, calls, 'no further refresh: no retry loop')
  const said = stack.logs.filter((line) => /needs a new login/.test(String(line.msg)))
  assert.equal(said.length, 1, 'said once')
}

test('a refresh the issuer performed but whose answer was lost ends in "needs login", said once', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  stack.fake.issuer.failRefresh(account.accountId, 'lost')
  const first = await refresh(stack, account.id)
  assert.equal(first.status, 502, 'the cut connection is a passing failure at first')
  await endsInNeedsLogin(stack, account.id)
})

test('a token endpoint that hangs is given up after the refresh timeout, and ends in "needs login", said once', async (t) => {
  const stack = await startStack(t, { build: { issuerTimeoutMs: 500 } })
  const account = await stack.addAccount()
  stack.fake.issuer.failRefresh(account.accountId, 'hang')
  const started = Date.now()
  const first = await refresh(stack, account.id)
  assert.equal(first.status, 502)
  assert.ok(Date.now() - started < 5_000, 'bounded by the timeout')
  await endsInNeedsLogin(stack, account.id)
})
