import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LEDGER_FILE } from '../../src/store/usage-ledger-file.js'
import { apiCall, completedUsage } from '../helpers/api-call.js'
import { postResponses, responsesBody, startStack } from '../helpers/stack.js'

test('the ledger\'s totals equal the backend\'s usage, per key, account and model, across a restart', async (t) => {
  const stack = await startStack(t)
  const one = await stack.addAccount({ email: 'one@example.com' })
  const two = await stack.addAccount({ email: 'two@example.com' })
  const alice = (await apiCall(stack, 'POST', '/keys', { name: 'alice' })).json.secret as string
  const bob = (await apiCall(stack, 'POST', '/keys', { name: 'bob' })).json.secret as string

  const expected = new Map<string, { requests: number, input: number, cachedInput: number, output: number, reasoning: number, total: number }>()
  const add = (group: string, usage: ReturnType<typeof completedUsage>): void => {
    const into = expected.get(group) ?? { requests: 0, input: 0, cachedInput: 0, output: 0, reasoning: 0, total: 0 }
    into.requests++
    into.input += usage.input
    into.cachedInput += usage.cachedInput
    into.output += usage.output
    into.reasoning += usage.reasoning
    into.total += usage.input + usage.output
    expected.set(group, into)
  }
  const turns: Array<[string, string, string, string]> = [
    ['alice', alice, 'gpt-5-codex', 'a short one'],
    ['alice', alice, 'gpt-5', 'a somewhat longer question about the code'],
    ['bob', bob, 'gpt-5-codex', 'bob asks'],
    ['bob', bob, 'gpt-5-codex', 'bob asks again, at more length this time']
  ]
  for (const [name, secret, model, text] of turns) {
    const answer = await postResponses(stack, responsesBody(text, { model, prompt_cache_key: `conv-${text}` }), { authorization: `Bearer ${secret}` })
    assert.equal(answer.status, 200)
    const account = answer.headers.get('x-codex-eq-account')!
    const usage = completedUsage(await answer.text())
    add(`key:${name}`, usage)
    add(`model:${model}`, usage)
    add(`account:${account}`, usage)
    add('all', usage)
  }
  // Move the next answer to the second account, so two accounts are counted.
  assert.equal((await apiCall(stack, 'POST', `/accounts/${two.id}/select`)).status, 200)
  const moved = await postResponses(stack, responsesBody('on the other account', { prompt_cache_key: 'conv-other' }), { authorization: `Bearer ${alice}` })
  const movedUsage = completedUsage(await moved.text())
  assert.equal(moved.headers.get('x-codex-eq-account'), two.id)
  for (const group of ['key:alice', 'model:gpt-5-codex', `account:${two.id}`, 'all']) add(group, movedUsage)
  assert.ok(expected.has(`account:${one.id}`))

  const check = async (when: string): Promise<void> => {
    for (const by of ['key', 'account', 'model'] as const) {
      const report = await apiCall(stack, 'GET', `/usage?by=${by}&bucket=hour`)
      assert.equal(report.status, 200, report.text)
      assert.deepEqual(report.json.totals, expected.get('all'), `${when}: totals by ${by}`)
      const groups = Object.fromEntries(report.json.groups.map((group: any) => [group.name, group.totals]))
      const wanted = Object.fromEntries([...expected].filter(([name]) => name.startsWith(`${by}:`)).map(([name, totals]) => [name.slice(by.length + 1), totals]))
      assert.deepEqual(groups, wanted, `${when}: groups by ${by}`)
      for (const group of report.json.groups) {
        const summed = group.series.reduce((sum: number, point: any) => sum + point.total, 0)
        assert.equal(summed, group.totals.total, `${when}: the ${by} ${String(group.name)} series adds up`)
      }
    }
    const daily = await apiCall(stack, 'GET', '/usage?by=key&bucket=day')
    assert.match(daily.json.groups[0].series[0].at, /T00:00:00\.000Z$/)
  }
  await check('before the restart')
  await stack.restart()
  await check('after the restart')

  // On disk: compact, and without a secret.
  const file = await readFile(join(stack.authsDir, LEDGER_FILE), 'utf8')
  assert.ok(!file.includes(alice) && !file.includes(bob))
  assert.ok(file.length < 2000, `the ledger is compact (${file.length} bytes)`)

  // A range before any use is empty; the quota history has a point per account that served.
  const empty = await apiCall(stack, 'GET', '/usage?from=2020-01-01&to=2020-01-02')
  assert.equal(empty.json.totals.total, 0)
  assert.deepEqual(empty.json.groups, [])
  const quota = await apiCall(stack, 'GET', '/usage/quota')
  assert.equal(quota.status, 200)
  assert.deepEqual(quota.json.accounts.map((entry: any) => entry.account).sort(), [one.id, two.id].sort())
  assert.equal(typeof quota.json.accounts[0].series[0].primary, 'number')
})

test('the recent requests list names key, account, model, status, attempts and tokens, never a secret; activity counts requests and failovers', async (t) => {
  const stack = await startStack(t)
  const limited = await stack.addAccount({ email: 'limited@example.com' })
  const account = await stack.addAccount({ email: 'one@example.com' })
  stack.fake.backend.setExhausted(limited.accountId, { resetsInSeconds: 3600 })
  const secret = (await apiCall(stack, 'POST', '/keys', { name: 'carol', daily_token_limit: 1 })).json.secret as string
  const answer = await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })
  const usage = completedUsage(await answer.text())
  const refused = await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })
  assert.equal(refused.status, 429)
  await refused.text()

  const recent = await apiCall(stack, 'GET', '/requests/recent')
  assert.equal(recent.status, 200)
  assert.ok(!recent.text.includes(secret))
  assert.equal(recent.json.length, 2)
  const [last, first] = recent.json
  assert.deepEqual({ ...first, at: undefined, ms: undefined }, { at: undefined, ms: undefined, key: 'carol', account: account.id, model: 'gpt-5-codex', status: 200, attempts: 2, tokens: usage.input + usage.output })
  assert.deepEqual({ ...last, at: undefined, ms: undefined }, { at: undefined, ms: undefined, key: 'carol', account: null, model: null, status: 429, attempts: 0, tokens: null })
  assert.equal((await apiCall(stack, 'GET', '/requests/recent?limit=1')).json.length, 1)
  assert.equal((await apiCall(stack, 'GET', '/requests/recent?limit=0')).status, 400)

  const activity = await apiCall(stack, 'GET', '/requests/activity')
  assert.equal(activity.status, 200)
  assert.equal(activity.json.length, 1)
  assert.deepEqual({ requests: activity.json[0].requests, failovers: activity.json[0].failovers }, { requests: { '2xx': 1, 429: 1 }, failovers: { quota: 1 } })
})

test('per-key request and token series sit next to the per-account ones in /metrics', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'one@example.com' })
  const secret = (await apiCall(stack, 'POST', '/keys', { name: 'dave' })).json.secret as string
  // Two answers between scrapes: the second adds to the counts the first made.
  const usage = completedUsage(await (await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })).text())
  const second = completedUsage(await (await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })).text())
  const metrics = (await apiCall(stack, 'GET', '/metrics')).text
  const value = (line: string): number => {
    const found = metrics.split('\n').find((row) => row.startsWith(`${line} `))
    assert.ok(found !== undefined, `${line} in /metrics`)
    return Number(found.split(' ').at(-1))
  }
  assert.equal(value('codex_eq_key_requests_total{key="dave",status="200"}'), 2)
  assert.equal(value(`codex_eq_requests_total{account="${account.id}",status="200"}`), 2)
  assert.equal(value('codex_eq_key_tokens_total{key="dave",type="input"}'), usage.input + second.input)
  assert.equal(value('codex_eq_key_tokens_total{key="dave",type="output"}'), usage.output + second.output)
  assert.equal(value('codex_eq_key_tokens_total{key="dave",type="reasoning"}'), usage.reasoning + second.reasoning)
  assert.equal(value(`codex_eq_account_tokens_total{account="${account.id}",type="input"}`), usage.input + second.input)
  assert.equal(value(`codex_eq_account_tokens_total{account="${account.id}",type="cached_input"}`), usage.cachedInput + second.cachedInput)
  assert.match(metrics, /# TYPE codex_eq_key_tokens_total counter/)
})

test('bad usage queries get a clear 400', async (t) => {
  const stack = await startStack(t)
  for (const query of ['by=person', 'bucket=week', 'from=yesterday', 'from=2026-02-01&to=2026-01-01', 'extra=1']) {
    const result = await apiCall(stack, 'GET', `/usage?${query}`)
    assert.equal(result.status, 400, `${query}: ${result.text}`)
    assert.equal(typeof result.json.error.message, 'string')
  }
})

test('--usage-retention 0 keeps no ledger: answers pass as before, nothing is counted or written', async (t) => {
  const stack = await startStack(t, { settings: { usageRetention: '0' } })
  assert.equal(stack.config.usageRetentionMs, 0)
  await stack.addAccount({ email: 'one@example.com' })
  const answer = await postResponses(stack, responsesBody('counted nowhere', { prompt_cache_key: 'conv-off' }))
  assert.equal(answer.status, 200)
  assert.ok(completedUsage(await answer.text()).input > 0)
  const report = await apiCall(stack, 'GET', '/usage?by=account&bucket=hour')
  assert.equal(report.status, 200, report.text)
  assert.equal(report.json.totals.requests, 0)
  assert.deepEqual(report.json.groups, [])
  await stack.app.close()
  await assert.rejects(readFile(join(stack.authsDir, LEDGER_FILE)), { code: 'ENOENT' })
})

test('translated answers are counted once each, with the usage the client was told, under the backend\'s model', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'one@example.com' })
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> => {
    return fetch(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  }
  const whole = await (await post('/v1/chat/completions', { model: 'gpt-5-codex', messages: [{ role: 'user', content: 'count me' }] })).json() as { usage: { prompt_tokens: number, completion_tokens: number } }
  const streamed = await (await post('/v1/chat/completions', { model: 'gpt-5-codex', messages: [{ role: 'user', content: 'count me too, streamed' }], stream: true, stream_options: { include_usage: true } })).text()
  const streamedUsage = JSON.parse(streamed.split('\n').filter((line) => line.startsWith('data: {')).at(-1)!.slice(6)).usage as { prompt_tokens: number, completion_tokens: number }
  const message = await (await post('/v1/messages', { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user', content: 'and me, in Anthropic' }] }, { 'anthropic-version': '2023-06-01' })).json() as { usage: { input_tokens: number, output_tokens: number } }
  const input = whole.usage.prompt_tokens + streamedUsage.prompt_tokens + message.usage.input_tokens
  const output = whole.usage.completion_tokens + streamedUsage.completion_tokens + message.usage.output_tokens
  assert.ok(input > 0 && output > 0)
  const report = await apiCall(stack, 'GET', '/usage?by=model&bucket=day')
  assert.equal(report.status, 200, report.text)
  assert.equal(report.json.totals.requests, 3)
  assert.equal(report.json.totals.input, input)
  assert.equal(report.json.totals.output, output)
  assert.deepEqual(report.json.groups.map((group: any) => group.name), ['gpt-5-codex'], 'the model the backend named, not the alias the client sent')

  // Each is listed among the recent requests too, with what its client was told.
  const recent = (await apiCall(stack, 'GET', '/requests/recent')).json as Array<{ key: string, account: string | null, model: string | null, status: number, attempts: number, tokens: number | null }>
  assert.deepEqual(recent.map((entry) => ({ ...entry, at: undefined, ms: undefined })), [
    message.usage.input_tokens + message.usage.output_tokens,
    streamedUsage.prompt_tokens + streamedUsage.completion_tokens,
    whole.usage.prompt_tokens + whole.usage.completion_tokens
  ].map((tokens) => ({ at: undefined, ms: undefined, key: 'none', account: account.id, model: 'gpt-5-codex', status: 200, attempts: 1, tokens })))
})
