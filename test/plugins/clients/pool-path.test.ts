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

test('translated bodies, 24 at once, each with its own long text, reach the backend whole and come back as their own answers, a failover among them', { timeout: 60_000 }, async (t) => {
  const stack = await startStack(t)
  const one = await stack.addAccount({ email: 'one@example.com' })
  await stack.addAccount({ email: 'two@example.com' })
  stack.fake.backend.script(one.accountId, { kind: 'usage_limit', resetsInSeconds: 1 })
  // Texts long enough to be copied into the backend's body as the client's bytes, each different throughout.
  const texts = Array.from({ length: 24 }, (_, i) => `request ${i}: ${String.fromCharCode(97 + i).repeat(20_000 + i * 997)}`)
  const ask = async (text: string, i: number): Promise<string> => {
    const stream = i % 2 === 0
    const answer = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-5-codex', stream, messages: [{ role: 'system', content: `system ${i} `.repeat(100) }, { role: 'user', content: text }] }) })
    assert.equal(answer.status, 200)
    if (!stream) return ((await answer.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content
    let said = ''
    for (const line of (await answer.text()).split('\n')) {
      if (!line.startsWith('data: {')) continue
      said += (JSON.parse(line.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? ''
    }
    return said
  }
  for (let round = 0; round < 2; round++) {
    const said = await Promise.all(texts.map(ask))
    said.forEach((text, i) => { assert.match(text, new RegExp(`^served by (one|two)@example\\.com: ${texts[i]!.slice(0, 100)}`)) })
  }
  const upstream = stack.fake.backend.requests.filter((request) => request.path === '/backend-api/codex/responses')
  assert.equal(upstream.length, 49, 'every request, and one more for the failover')
  const seen = new Map<string, number>()
  for (const request of upstream) {
    const body = request.body as { instructions: string, input: Array<{ content: Array<{ text: string }> }> }
    const text = body.input[0]!.content[0]!.text
    const i = texts.indexOf(text)
    assert.ok(i !== -1, `an upstream body carries a text as it was sent (${text.slice(0, 40)}…)`)
    assert.equal(body.instructions, `system ${i} `.repeat(100))
    seen.set(text, (seen.get(text) ?? 0) + 1)
  }
  assert.equal(seen.size, 24)
})
