import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { startStack } from '../../helpers/stack.js'

const chat = (stream: boolean): string => JSON.stringify({ model: 'gpt-5-codex', stream, messages: [{ role: 'user', content: 'counted' }] })

test('translated requests are counted and logged like /v1/responses, with the account that served them', async (t) => {
  const stack = await startStack(t)
  const one = await stack.addAccount({ email: 'one@example.com' })
  const answer = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(false) })
  assert.equal(answer.status, 200)
  await answer.json()
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  assert.match(metrics, new RegExp(`codex_eq_requests_total\\{account="${one.id}",status="200"\\} 1`))
  const line = stack.logs.find((entry) => entry.msg === 'translated')
  assert.ok(line !== undefined, 'one line per translated request')
  assert.equal(line.api, 'openai')
  assert.equal(line.account, one.id)
  assert.equal(line.email, 'one@example.com')
  assert.equal(line.status, 200)
  assert.ok(!JSON.stringify(stack.logs).includes(one.tokens.access_token), 'no token in the logs')
})

for (const stream of [true, false]) {
  test(`a client that leaves ${stream ? 'mid-stream' : 'before its whole answer'} ends the upstream request`, { timeout: 30_000 }, async (t) => {
    const stack = await startStack(t)
    const one = await stack.addAccount()
    stack.fake.backend.script(one.accountId, { kind: 'slow', eventDelayMs: 300 })
    const leaving = new AbortController()
    const asked = fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(stream), signal: leaving.signal })
    if (stream) {
      const response = await asked
      assert.equal(response.status, 200)
      await response.body!.getReader().read()
    } else {
      asked.catch(() => {})
      for (let i = 0; i < 200 && (stack.fake.backend.requests.length === 0 || stack.fake.backend.requests.at(-1)!.bytesSent === 0); i++) await sleep(50)
    }
    leaving.abort()
    const upstream = stack.fake.backend.requests.at(-1)!
    for (let i = 0; i < 50; i++) {
      await sleep(200)
      if (stack.logs.some((entry) => entry.msg === 'translated' && entry.left === true)) break
    }
    assert.ok(stack.logs.some((entry) => entry.msg === 'translated' && entry.left === true), 'logged as left')
    const sent = upstream.bytesSent
    await sleep(1000)
    assert.equal(upstream.bytesSent, sent, 'the upstream stream was closed')
  })
}
