import { test } from 'node:test'
import assert from 'node:assert/strict'
import { postResponses, startStack, type Stack } from '../helpers/stack.js'

const ADMIN = 'admin-token-0123456789'

async function call (stack: Stack, method: string, path: string, token: string | null = ADMIN, body?: unknown): Promise<{ status: number, json: any }> {
  const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(`${stack.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.text()
  return { status: response.status, json: text === '' ? null : JSON.parse(text) }
}

test('every management action is one audit log line and an entry of GET /audit: what, which account, from where', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  const first = await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com' })
  stack.fake.backend.script(first.accountId, { kind: 'status', status: 403 }, { kind: 'status', status: 403 }, { kind: 'status', status: 403 })
  await (await postResponses(stack, undefined, { authorization: `Bearer ${ADMIN}` })).text() // first gets disabled
  assert.equal((await call(stack, 'POST', `/accounts/${first.id}/enable`)).status, 200)
  assert.equal((await call(stack, 'POST', `/accounts/${first.id}/select`)).status, 200)
  assert.equal((await call(stack, 'POST', `/accounts/${second.id}/refresh`)).status, 200)
  assert.equal((await call(stack, 'DELETE', `/accounts/${second.id}`)).status, 204)
  // Refused actions change nothing and are not recorded as done.
  assert.equal((await call(stack, 'DELETE', '/accounts/nobody@example.com')).status, 404)
  assert.equal((await call(stack, 'POST', `/accounts/${first.id}/enable`, 'wrong-token-0123456789')).status, 401)

  // A device login: the audit names who started it when it completes.
  const person = stack.fake.addAccount({ email: 'device@example.com' })
  const device = (await call(stack, 'POST', '/auth/device')).json as { id: string, user_code: string }
  stack.fake.issuer.approveDevice(device.user_code, person.accountId)
  const deadline = Date.now() + 30_000
  let status = 'pending'
  while (status === 'pending' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 300))
    status = (await call(stack, 'GET', `/auth/device/${device.id}`)).json.status
  }
  assert.equal(status, 'complete')

  const audit = await call(stack, 'GET', '/audit')
  assert.equal(audit.status, 200)
  const entries = audit.json as any[]
  assert.deepEqual(entries.map((e) => `${e.action} ${e.account?.email}`), [
    'login_completed device@example.com',
    'account_delete second@example.com',
    'account_refresh second@example.com',
    'account_select first@example.com',
    'account_enable first@example.com',
    'account_import second@example.com',
    'account_import first@example.com'
  ], 'newest first, only what was done')
  for (const entry of entries) {
    assert.deepEqual(entry.actor, { via: 'admin_token', remote: '127.0.0.1' })
    assert.ok(Number.isFinite(Date.parse(entry.at)))
  }
  assert.equal(entries[6].account.id, first.id)
  assert.deepEqual(entries[6].details, { created: true })
  assert.deepEqual(entries[2].details, { result: 'ok' })
  assert.deepEqual(entries[0].details, { flow: 'device' })
  assert.deepEqual((await call(stack, 'GET', '/audit?limit=2')).json.map((e: any) => e.action), ['login_completed', 'account_delete'])

  const lines = stack.logs.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('audit: '))
  assert.deepEqual(lines.map((line) => line.msg), entries.map((e) => `audit: ${e.action}`).reverse(), 'one log line per action')
  assert.deepEqual((lines[0]!.audit as any).account, { id: first.id, email: 'first@example.com' })
  assert.ok(!JSON.stringify(lines).includes(ADMIN), 'the admin token is not logged')
})

test('GET /audit is guarded like the management API and refuses a bad limit', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  assert.equal((await call(stack, 'GET', '/audit', null)).status, 401)
  for (const limit of ['0', 'abc', '100000']) {
    const bad = await call(stack, 'GET', `/audit?limit=${limit}`)
    assert.equal(bad.status, 400, `limit=${limit}`)
    assert.equal(typeof bad.json.error.message, 'string')
  }
})

test('without an admin token the audit says the action came from a local caller', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'local@example.com' })
  const entries = (await call(stack, 'GET', '/audit', null)).json as any[]
  assert.deepEqual(entries.map((e) => [e.action, e.account.id, e.actor.via, e.actor.remote]), [['account_import', account.id, 'local', '127.0.0.1']])
})
