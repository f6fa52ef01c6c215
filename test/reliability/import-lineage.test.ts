/**
 * An import never brings back a refresh token the pool has already spent: a retried or
 * double-clicked import, or a restored backup, is refused with a 409 that says why.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startStack, type Stack } from '../helpers/stack.js'

async function importBody (stack: Stack, body: Record<string, unknown>): Promise<Response> {
  return await fetch(`${stack.url}/accounts/import`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

test('re-importing an auth.json the pool has since rotated is refused with 409; the same tokens again are a no-op; force imports', async (t) => {
  const stack = await startStack(t)
  const account = stack.fake.addAccount()
  const original = { tokens: { ...account.tokens }, last_refresh: new Date().toISOString() }
  const first = await importBody(stack, original)
  assert.equal(first.status, 201)
  const id = (await first.json() as { id: string }).id

  const again = await importBody(stack, original)
  assert.equal(again.status, 200, 'a double click')
  assert.equal(again.headers.get('x-codex-eq-import'), 'unchanged')

  assert.equal((await fetch(`${stack.url}/accounts/${id}/refresh`, { method: 'POST' })).status, 200)
  const rotated = stack.fake.accounts[0]!.tokens.refresh_token
  const stale = await importBody(stack, original)
  assert.equal(stale.status, 409)
  const error = (await stale.json() as { error: { type: string, message: string } }).error
  assert.equal(error.type, 'older_tokens')
  assert.match(error.message, /already used by the pool/)
  assert.ok(!error.message.includes(account.tokens.refresh_token), 'no token in the message')

  const view = await (await fetch(`${stack.url}/accounts`)).json() as Array<{ status: string }>
  assert.equal(view[0]!.status, 'active')
  assert.equal((await fetch(`${stack.url}/accounts/${id}/refresh`, { method: 'POST' })).status, 200, 'the rotated token was kept and still works')
  assert.notEqual(stack.fake.accounts[0]!.tokens.refresh_token, rotated)

  const forced = await importBody(stack, { ...original, force: true })
  assert.equal(forced.status, 200)
  assert.equal(forced.headers.get('x-codex-eq-import'), 'updated')
})
