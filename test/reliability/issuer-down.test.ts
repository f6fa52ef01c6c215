/**
 * The issuer is down when an access token nears its end: the pool keeps serving with the token it
 * has (still valid), and tries the refresh again with growing pauses, not on every request.
 * The pool's backoff rules are unit tested in test/src/account-pool.test.ts; this is the whole app
 * against the fake issuer, on a clock the test moves.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { postResponses, responsesBody, startStack } from '../helpers/stack.js'

const MINUTE = 60_000

test('issuer down during a proactive refresh: the still-valid token keeps serving, the refresh is retried with backoff', async (t) => {
  let now = Date.now()
  const clock = { now: () => now }
  // Access tokens live an hour; refreshing 10 minutes before the end puts the first turn after
  // 50 minutes inside that margin, while the token still has 10 minutes to go.
  const stack = await startStack(t, { fake: { now: clock.now }, build: { clock, refreshMarginMs: 10 * MINUTE } })
  const account = await stack.addAccount({ email: 'steady@example.com' })
  stack.fake.issuer.failRefresh(account.accountId, 'down')
  const firstToken = account.tokens.access_token

  const turn = async (text: string): Promise<string | undefined> => {
    const response = await postResponses(stack, responsesBody(text))
    assert.equal(response.status, 200, `${text}: served`)
    assert.match(await response.text(), new RegExp(`served by steady@example.com: ${text}`))
    return String(stack.fake.backend.requests.at(-1)!.headers.authorization)
  }
  /**
   * A background refresh runs beside the turn: wait (bounded) until the fake has seen `calls` refreshes
   * and the pool has recorded each one's outcome. Where no new refresh is expected, this still gives one
   * 150 ms to show up, so that a wrong extra call would be caught.
   */
  const settle = async (calls: number): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, 150))
    const recorded = (): number => stack.logs.filter((line) => /token refresh failed|tokens refreshed/.test(String(line.msg))).length
    for (let i = 0; i < 150 && (stack.fake.issuer.refreshCalls < calls || recorded() < stack.fake.issuer.refreshCalls); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  now += 50 * MINUTE
  assert.equal(await turn('one'), `Bearer ${firstToken}`, 'served at once with the token it has')
  await settle(1)
  assert.equal(stack.fake.issuer.refreshCalls, 1, 'a refresh was tried in the background')
  const failed = stack.logs.filter((line) => line.msg === 'token refresh failed; will retry')
  assert.equal(failed.length, 1)
  assert.equal(failed[0]!.retryInMs, 30_000)
  const view = (await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, unknown>>)[0]!
  assert.match(String(view.last_error), /^token refresh failed: /)
  assert.equal(view.status, 'active', 'the account keeps serving')

  for (const text of ['two', 'three', 'four']) assert.equal(await turn(text), `Bearer ${firstToken}`)
  await settle(1)
  assert.equal(stack.fake.issuer.refreshCalls, 1, 'not retried on every request')

  now += 31_000
  await turn('after 31 s')
  await settle(2)
  assert.equal(stack.fake.issuer.refreshCalls, 2, 'retried once the pause is over')
  assert.equal(stack.logs.filter((line) => line.msg === 'token refresh failed; will retry').at(-1)!.retryInMs, 60_000, 'the pause doubles')

  now += 31_000
  await turn('31 s later')
  await settle(2)
  assert.equal(stack.fake.issuer.refreshCalls, 2, 'still inside the longer pause')

  stack.fake.issuer.failRefresh(account.accountId, null)
  now += 30_000
  assert.equal(await turn('issuer back'), `Bearer ${firstToken}`, 'this turn still goes out with the old token')
  await settle(3)
  assert.equal(stack.fake.issuer.refreshCalls, 3)
  const renewed = stack.fake.accounts[0]!.tokens.access_token
  assert.notEqual(renewed, firstToken)
  assert.equal(await turn('renewed'), `Bearer ${renewed}`, 'the next one uses the new token')
  assert.ok(stack.logs.some((line) => line.msg === 'tokens refreshed'))
})
