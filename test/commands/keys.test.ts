import { test } from 'node:test'
import assert from 'node:assert/strict'
import { postResponses, startStack } from '../helpers/stack.js'
import { runCli } from './run-cli.js'

const ADMIN = 'admin-token-for-keys-tests'

test('keys create prints the secret once, list shows the key without it, delete ends it', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  await stack.addAccount({ email: 'one@example.com' })
  const server = ['--server', stack.url, '--admin-token', ADMIN]

  const created = await runCli(t, ['keys', 'create', 'alice', '--daily-limit', '5000', '--expires', '30d', ...server])
  assert.equal(created.code, 0, created.stderr)
  const secret = /secret \(shown only now\): (ceq_\S+)\n/.exec(created.stdout)?.[1]
  assert.ok(secret !== undefined, created.stdout)
  assert.match(created.stdout, /^created key key_[0-9a-f]{12} \(alice\), 5000 tokens a day, until \d{4}-/)

  const answer = await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })
  assert.equal(answer.status, 200)
  await answer.text()

  const list = await runCli(t, ['keys', ...server])
  assert.equal(list.code, 0, list.stderr)
  assert.ok(!list.stdout.includes(secret))
  const rows = list.stdout.trimEnd().split('\n')
  assert.match(rows[0]!, /^ID +NAME +TODAY +LAST USED +EXPIRES$/)
  assert.match(rows[1]!, /^key_[0-9a-f]{12} alice \d+\/5000 +(\d{4}-\d\d-\d\d )?\d\d:\d\d/)
  const json = JSON.parse((await runCli(t, ['keys', 'list', '--json', ...server])).stdout) as Array<{ name: string, tokens_today: number }>
  assert.equal(json[0]!.name, 'alice')
  assert.ok(json[0]!.tokens_today > 0)

  const taken = await runCli(t, ['keys', 'create', 'alice', ...server])
  assert.equal(taken.code, 1)
  assert.match(taken.stderr, /a key named "alice" exists already/)
  const badLimit = await runCli(t, ['keys', 'create', 'bob', '--daily-limit', 'lots', ...server])
  assert.equal(badLimit.code, 1)
  assert.match(badLimit.stderr, /--daily-limit "lots" is not a positive number/)

  // Another key keeps /v1 closed once alice is gone (with no key at all it is open again).
  assert.equal((await runCli(t, ['keys', 'create', 'carol', ...server])).code, 0)
  const deleted = await runCli(t, ['keys', 'delete', 'alice', ...server])
  assert.equal(deleted.code, 0, deleted.stderr)
  assert.equal(deleted.stdout, `deleted key alice on ${stack.url}\n`)
  assert.equal((await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })).status, 401)
  assert.equal((await runCli(t, ['keys', 'delete', 'carol', ...server])).code, 0)
  const none = await runCli(t, ['keys', ...server])
  assert.match(none.stdout, /^no client keys on /)
  const noToken = await runCli(t, ['keys', '--server', stack.url])
  assert.equal(noToken.code, 1)
  assert.match(noToken.stderr, /needs its admin token/)
})
