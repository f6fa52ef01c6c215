import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TOKENS_FILE, type StoreData } from '../../src/store/file-store.js'
import type { RecordedRequest } from '../fakes/index.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'

type View = Record<string, any>

const views = async (stack: Stack): Promise<View[]> => await (await fetch(`${stack.url}/accounts`)).json() as View[]
const onDisk = (stack: Stack): StoreData => JSON.parse(readFileSync(join(stack.authsDir, TOKENS_FILE), 'utf8')) as StoreData
const latestTokens = (stack: Stack, accountId: string) => stack.fake.accounts.find((a) => a.accountId === accountId)!.tokens

/** The parts of an account's state a restart must not change. */
function state (view: View): Record<string, unknown> {
  const { id, status, current, disabled_until: until, disabled_source: source, reason, last_error: lastError, requests, last_used: lastUsed } = view
  return { id, status, current, until, source, reason, lastError, requests, lastUsed }
}

async function turn (stack: Stack, conversation: string): Promise<Response> {
  const response = await postResponses(stack, responsesBody('hi', { prompt_cache_key: conversation }))
  await response.text()
  return response
}

test('cooldowns, disable reasons and "needs login" survive a restart', async (t) => {
  const stack = await startStack(t)
  const cooling = await stack.addAccount()
  const failing = await stack.addAccount()
  const serving = await stack.addAccount()
  const locked = await stack.addAccount()
  stack.fake.backend.setExhausted(cooling.accountId, { resetsInSeconds: 7200 })
  stack.fake.backend.script(failing.accountId, { kind: 'status', status: 403 }, { kind: 'status', status: 403 }, { kind: 'status', status: 403 })
  assert.equal((await turn(stack, 'c1')).headers.get('x-codex-eq-account'), serving.id)
  stack.fake.issuer.failRefresh(locked.accountId, 'expired')
  assert.equal((await fetch(`${stack.url}/accounts/${locked.id}/refresh`, { method: 'POST' })).status, 409)

  const before = (await views(stack)).map(state)
  assert.deepEqual(before.map((v) => v.status), ['cooling', 'disabled', 'active', 'needs_login'])
  await stack.restart()
  const after = (await views(stack)).map(state)
  assert.deepEqual(after, before)

  // The fake would now serve the cooled account again: only the persisted state keeps the pool away from it.
  stack.fake.backend.setExhausted(cooling.accountId, null)
  stack.fake.issuer.failRefresh(locked.accountId, null)
  const calls = stack.fake.backend.requests.length
  const response = await turn(stack, 'c2')
  assert.equal(response.headers.get('x-codex-eq-account'), serving.id)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '1')
  assert.deepEqual(stack.fake.backend.requests.slice(calls).map((r) => r.accountId), [serving.accountId])
})

test('the sticky choice survives a restart', async (t) => {
  const stack = await startStack(t)
  const first = await stack.addAccount()
  const second = await stack.addAccount()
  stack.fake.backend.setExhausted(first.accountId, { resetsInSeconds: 3600 })
  assert.equal((await turn(stack, 'c1')).headers.get('x-codex-eq-account'), second.id)
  // The first account is usable again, yet the one that last worked keeps serving.
  stack.fake.backend.setExhausted(first.accountId, null)
  assert.equal((await fetch(`${stack.url}/accounts/${first.id}/enable`, { method: 'POST' })).status, 200)
  assert.equal((await turn(stack, 'c2')).headers.get('x-codex-eq-account'), second.id)
  assert.equal(onDisk(stack).sticky, second.id)

  await stack.restart()
  assert.deepEqual((await views(stack)).map((v) => [v.id, v.status, v.current]), [[first.id, 'active', false], [second.id, 'active', true]])
  assert.equal((await turn(stack, 'c3')).headers.get('x-codex-eq-account'), second.id, 'a new conversation after the restart goes to the sticky account')
})

test('a rotated refresh token is on disk right after a refresh, before its access token is used', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  const original = account.tokens

  // Forced refresh: on disk when the API answers.
  assert.equal((await fetch(`${stack.url}/accounts/${account.id}/refresh`, { method: 'POST' })).status, 200)
  const afterForced = latestTokens(stack, account.accountId)
  assert.notEqual(afterForced.refresh_token, original.refresh_token)
  assert.equal(onDisk(stack).accounts[0]!.tokens.refreshToken, afterForced.refresh_token)

  // Refresh inside the failover ladder: look at the disk the moment the backend first sees the new access token.
  const seenOnDisk: string[] = []
  const requests = stack.fake.backend.requests
  const push = requests.push.bind(requests)
  requests.push = (...items: RecordedRequest[]): number => {
    for (const item of items) {
      if (item.headers.authorization !== `Bearer ${afterForced.access_token}`) seenOnDisk.push(onDisk(stack).accounts[0]!.tokens.refreshToken)
    }
    return push(...items)
  }
  stack.fake.backend.revokeAccessTokens(account.accountId)
  const response = await turn(stack, 'c1')
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('x-codex-eq-attempts'), '2')
  const afterLadder = latestTokens(stack, account.accountId)
  assert.notEqual(afterLadder.refresh_token, afterForced.refresh_token)
  assert.deepEqual(seenOnDisk, [afterLadder.refresh_token], 'the new refresh token was on disk when the new access token was first sent')

  // After a restart the pool holds the live refresh token: one more refresh works.
  await stack.restart()
  const again = await fetch(`${stack.url}/accounts/${account.id}/refresh`, { method: 'POST' })
  assert.equal(again.status, 200, await again.text())
})

test('brief rests, model-scoped limits and a proxy setting survive a restart', async (t) => {
  const stack = await startStack(t)
  const limited = await stack.addAccount()
  const resting = await stack.addAccount()
  const serving = await stack.addAccount()
  stack.fake.backend.setModelLimit(limited.accountId, 'gpt-5.3-codex-spark', { family: 'codex_bengalfox', limitName: 'GPT-5.3-Codex-Spark' })
  stack.fake.backend.script(resting.accountId, { kind: 'status', status: 502 })
  const response = await postResponses(stack, responsesBody('spark', { model: 'gpt-5.3-codex-spark', prompt_cache_key: 'c1' }))
  await response.text()
  assert.equal(response.headers.get('x-codex-eq-account'), serving.id)
  const before = await views(stack)
  assert.deepEqual(before.map((v) => v.status), ['active', 'resting', 'active'])
  assert.equal(before[0]!.limits.length, 1)
  await stack.restart()
  const after = await views(stack)
  assert.deepEqual(after.map((v) => [v.status, v.disabled_until, v.disabled_source, v.limits]), before.map((v) => [v.status, v.disabled_until, v.disabled_source, v.limits]))
})
