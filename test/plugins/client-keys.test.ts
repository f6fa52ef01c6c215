import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { KEYS_FILE } from '../../src/store/key-file.js'
import { apiCall, completedUsage } from '../helpers/api-call.js'
import { Agent, request as undiciRequest } from 'undici'
import { postResponses, responsesBody, startStack } from '../helpers/stack.js'

const FIXED_KEY = 'fixed-client-key-0123456789'

test('a key is created with its secret shown once, kept only as a hash, used, listed and deleted; --api-key keys keep working', async (t) => {
  const stack = await startStack(t, { settings: { apiKey: [FIXED_KEY] } })
  await stack.addAccount({ email: 'one@example.com' })

  const created = await apiCall(stack, 'POST', '/keys', { name: 'alice', daily_token_limit: 1_000_000 })
  assert.equal(created.status, 201, created.text)
  const secret = created.json.secret as string
  assert.match(secret, /^ceq_[A-Za-z0-9_-]{40,}$/)
  assert.equal(created.json.name, 'alice')
  assert.equal(created.json.daily_token_limit, 1_000_000)

  // On disk: the hash, never the secret; the file is private.
  const file = join(stack.authsDir, KEYS_FILE)
  const onDisk = await readFile(file, 'utf8')
  assert.ok(!onDisk.includes(secret), 'the secret is not on disk')
  assert.ok(onDisk.includes(createHash('sha256').update(secret).digest('hex')), 'its hash is')
  assert.equal((await stat(file)).mode & 0o777, 0o600)
  for (const name of await readdir(stack.authsDir)) {
    const text = await readFile(join(stack.authsDir, name), 'utf8').catch(() => '')
    assert.ok(!text.includes(secret), `${name} does not hold the secret`)
  }

  // Listed without secret or hash; the --api-key key is there by its position.
  const list = await apiCall(stack, 'GET', '/keys')
  assert.equal(list.status, 200)
  assert.ok(!list.text.includes(secret) && !list.text.includes(FIXED_KEY) && !list.text.includes('hash'))
  assert.deepEqual(list.json.map((key: any) => [key.name, key.fixed]), [['api-key-1', true], ['alice', false]])
  assert.equal(list.json[1].last_used_at, null)

  const answer = await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })
  assert.equal(answer.status, 200)
  const usage = completedUsage(await answer.text())
  const fixed = await postResponses(stack, undefined, { authorization: `Bearer ${FIXED_KEY}` })
  assert.equal(fixed.status, 200)
  await fixed.text()
  const wrong = await postResponses(stack, undefined, { authorization: 'Bearer ceq_not-a-key-at-all-0123456789' })
  assert.equal(wrong.status, 401)
  assert.equal(((await wrong.json()) as any).error.message, 'wrong API key')

  const after = (await apiCall(stack, 'GET', '/keys')).json.find((key: any) => key.name === 'alice')
  assert.notEqual(after.last_used_at, null)
  assert.equal(after.tokens_today, usage.input + usage.output)

  // A second key of the same name is refused; a fixed key cannot be deleted.
  assert.equal((await apiCall(stack, 'POST', '/keys', { name: 'alice' })).status, 409)
  const fixedDelete = await apiCall(stack, 'DELETE', '/keys/api-key-1')
  assert.equal(fixedDelete.status, 409, fixedDelete.text)

  // It survives a restart, then is deleted and refused.
  await stack.restart()
  const again = await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })
  assert.equal(again.status, 200)
  await again.text()
  assert.equal((await apiCall(stack, 'DELETE', `/keys/${created.json.id as string}`)).status, 204)
  assert.equal((await apiCall(stack, 'DELETE', `/keys/${created.json.id as string}`)).status, 404)
  const gone = await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })
  assert.equal(gone.status, 401)
  assert.deepEqual((await apiCall(stack, 'GET', '/keys')).json.map((key: any) => key.name), ['api-key-1'])
  const fixedStill = await postResponses(stack, undefined, { authorization: `Bearer ${FIXED_KEY}` })
  assert.equal(fixedStill.status, 200)
  await fixedStill.text()

  assert.ok(!JSON.stringify(stack.logs).includes(secret), 'the secret is never logged')
  assert.ok(stack.logs.some((line) => line.msg === 'proxied' && line.key === 'alice'), 'the request line names the key')
})

test('a key over its daily token limit gets a 429 naming the limit and its reset, and no account is asked', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const created = await apiCall(stack, 'POST', '/keys', { name: 'bob', daily_token_limit: 10 })
  const auth = { authorization: `Bearer ${created.json.secret as string}` }

  // Without any key, /v1 now needs one.
  assert.equal((await postResponses(stack)).status, 401)

  const first = await postResponses(stack, undefined, auth)
  assert.equal(first.status, 200)
  await first.text()
  const sent = stack.fake.backend.requests.length
  const refused = await postResponses(stack, undefined, auth)
  assert.equal(refused.status, 429)
  const body = await refused.json() as any
  const midnight = (Math.floor(Date.now() / 86_400_000) + 1) * 86_400_000
  assert.equal(body.error.type, 'usage_limit_reached')
  assert.equal(body.error.code, 'key_limit_reached')
  assert.equal(body.error.limit, 10)
  assert.equal(body.error.resets_at, midnight / 1000)
  assert.match(body.error.message, /"bob" has used its daily limit of 10 tokens/)
  assert.match(body.error.message, new RegExp(new Date(midnight).toISOString().replace(/[.]/g, '\\.')))
  assert.ok(Number(refused.headers.get('retry-after')) > 0)
  assert.equal(stack.fake.backend.requests.length, sent, 'no account was asked')
  assert.ok((await apiCall(stack, 'GET', '/accounts')).json.every((account: any) => account.status === 'active'))
})

test('an expired key is refused with a 401 that says so', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'one@example.com' })
  const expiresAt = Date.now() + 5000
  const created = await apiCall(stack, 'POST', '/keys', { name: 'brief', expires_at: new Date(expiresAt).toISOString() })
  assert.equal(created.status, 201, created.text)
  const auth = { authorization: `Bearer ${created.json.secret as string}` }
  while (Date.now() <= expiresAt + 200) await new Promise((resolve) => setTimeout(resolve, 250))
  const sent = stack.fake.backend.requests.length
  const refused = await postResponses(stack, undefined, auth)
  assert.equal(refused.status, 401)
  const body = await refused.json() as any
  assert.equal(body.error.code, 'key_expired')
  assert.match(body.error.message, /"brief" expired at/)
  assert.equal(stack.fake.backend.requests.length, sent)
})

test('bad key requests get a clear 400 and change nothing', async (t) => {
  const stack = await startStack(t)
  const bad: unknown[] = [
    { name: '' },
    { name: 'has space' },
    { name: 'none' },
    { name: 'api-key-3' },
    { name: 'x', daily_token_limit: '5' },
    { name: 'x', daily_token_limit: 0 },
    { name: 'x', expires_at: 'tomorrow' },
    { name: 'x', expires_at: '2001-01-01T00:00:00Z' },
    { name: 'x', extra: true },
    'not json'
  ]
  for (const body of bad) {
    const result = await apiCall(stack, 'POST', '/keys', body)
    assert.equal(result.status, 400, `${JSON.stringify(body)}: ${result.text}`)
    assert.equal(typeof result.json.error.message, 'string')
  }
  assert.equal((await apiCall(stack, 'DELETE', '/keys/nope')).status, 404)
  assert.deepEqual((await apiCall(stack, 'GET', '/keys')).json, [])
  await assert.rejects(readFile(join(stack.authsDir, KEYS_FILE)), /ENOENT/)
  // No key exists: /v1 is open as before.
  await stack.addAccount()
  const open = await postResponses(stack)
  assert.equal(open.status, 200)
  await open.text()
})

test('on one keep-alive connection: each request is checked for its own key, and a key deleted meanwhile is refused at once', async (t) => {
  const stack = await startStack(t, { settings: { apiKey: [FIXED_KEY] } })
  await stack.addAccount({ email: 'one@example.com' })
  const alice = (await apiCall(stack, 'POST', '/keys', { name: 'alice' })).json as { id: string, secret: string }
  const bob = (await apiCall(stack, 'POST', '/keys', { name: 'bob' })).json as { id: string, secret: string }
  // One socket for every request, so they all come over the same connection.
  const agent = new Agent({ connections: 1, pipelining: 1 })
  t.after(() => agent.close())
  const send = async (secret: string): Promise<number> => {
    const answer = await undiciRequest(`${stack.url}/v1/responses`, { method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' }, body: JSON.stringify(responsesBody('hi')) })
    await answer.body.text()
    return answer.statusCode
  }
  assert.equal(await send(alice.secret), 200)
  assert.equal(await send(alice.secret), 200)
  assert.equal(await send(`${alice.secret}x`), 401, 'a secret that only starts like the last one is not it')
  assert.equal(await send(bob.secret), 200)
  assert.equal(await send(alice.secret), 200)
  assert.equal((await apiCall(stack, 'DELETE', `/keys/${alice.id}`)).status, 204)
  assert.equal(await send(alice.secret), 401, 'deleted: refused on the connection that used it')
  assert.equal(await send(bob.secret), 200)
  const recent = await apiCall(stack, 'GET', '/requests/recent')
  assert.deepEqual(recent.json.slice(0, 5).map((entry: { key: string }) => entry.key), ['bob', 'alice', 'bob', 'alice', 'alice'], 'each request counted under its own key')
})
