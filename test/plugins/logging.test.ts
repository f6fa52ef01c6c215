import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import pino from 'pino'
import { loggerOptions } from '../../src/logger.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { openWs } from '../helpers/ws-client.js'

const API_KEY = 'client-api-key-5f1e2d3c4b'
const COOKIE = 'session=cookie-value-77aa88bb99'
const PROMPT_MARKER = 'conversation-text-0xC0FFEE'

type Line = Record<string, any>

/** The log lines the proxy wrote for requests (they carry the attempt count). */
const requestLines = (logs: Line[]): Line[] => logs.filter((line) => 'attempts' in line)

async function waitForLines (logs: Line[], count: number): Promise<void> {
  for (let i = 0; i < 500 && requestLines(logs).length < count; i++) await delay(20)
}

async function turn (stack: Stack, body = responsesBody(`${PROMPT_MARKER} please`)): Promise<Response> {
  const response = await postResponses(stack, body, { authorization: `Bearer ${API_KEY}`, cookie: COOKIE })
  await response.text()
  return response
}

test('one log line per proxied request with account, status, attempts and duration; no secret or body text in any line', async (t) => {
  // The server's own logger options (redaction, serializers), at the most talkative level.
  const logs: Line[] = []
  const logger = pino(loggerOptions('trace'), { write (line: string) { logs.push(JSON.parse(line) as Line) } })
  const stack = await startStack(t, { settings: { apiKey: [API_KEY] }, build: { logger } })
  const first = await stack.addAccount()
  const second = await stack.addAccount()

  const expected: Array<{ account: string | undefined, status: number, attempts: number }> = []
  const check = async (response: Response, account: string | undefined, status: number, attempts: number): Promise<void> => {
    assert.equal(response.status, status)
    expected.push({ account, status, attempts })
    await waitForLines(logs, expected.length)
  }

  await check(await turn(stack), first.id, 200, 1)
  stack.fake.backend.revokeAccessTokens(first.accountId) // 401, refresh, 200
  await check(await turn(stack), first.id, 200, 2)
  await check(await turn(stack, responsesBody(PROMPT_MARKER, { store: true })), first.id, 400, 1)
  stack.fake.backend.setExhausted(first.accountId, { resetsInSeconds: 600 })
  await check(await turn(stack), second.id, 200, 2)
  stack.fake.backend.setExhausted(second.accountId, { resetsInSeconds: 900 })
  await check(await turn(stack), undefined, 429, 1)
  stack.fake.issuer.failRefresh(second.accountId, 'invalidated')
  assert.equal((await fetch(`${stack.url}/accounts/${second.id}/refresh`, { method: 'POST' })).status, 409)
  // a late duplicate would show up here
  await delay(200)

  const lines = requestLines(logs)
  assert.equal(lines.length, expected.length, `one line per request:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)
  for (const [index, want] of expected.entries()) {
    const line = lines[index]!
    assert.equal(line.account, want.account, `line ${index}`)
    assert.equal(line.status, want.status, `line ${index}`)
    assert.equal(line.attempts, want.attempts, `line ${index}`)
    assert.equal(typeof line.ms, 'number', `line ${index} has the duration`)
    assert.ok(line.ms >= 0)
  }

  const text = logs.map((line) => JSON.stringify(line)).join('\n')
  assert.ok(logs.length > lines.length, 'the pool logged its own events too (refresh, cooldown)')
  const secrets = stack.fake.allIssuedSecrets()
  assert.ok(secrets.length >= 9, 'imports and refreshes issued tokens')
  for (const secret of secrets) assert.ok(!text.includes(secret), 'no issued token in the logs')
  for (const secret of secrets) assert.ok(!text.includes(secret.split('.')[2] ?? secret), 'not even a token\'s signature part')
  assert.ok(!text.includes(API_KEY), 'no API key')
  assert.ok(!/bearer/i.test(text), 'no Authorization header')
  assert.ok(!text.includes('cookie-value-77aa88bb99'), 'no cookie')
  assert.ok(!text.includes(PROMPT_MARKER), 'no request or response body text')
  assert.ok(!text.includes('served by'), 'no response body text')
})

test('the request line names the account by id and by email (over HTTP and WebSocket), the header stays the id, and times are ISO 8601', async (t) => {
  const logs: Line[] = []
  const logger = pino(loggerOptions('info'), { write (line: string) { logs.push(JSON.parse(line) as Line) } })
  const stack = await startStack(t, { build: { logger } })
  const account = await stack.addAccount({ email: 'known@example.com' })
  const response = await postResponses(stack)
  await response.text()
  assert.equal(response.headers.get('x-codex-eq-account'), account.id)
  await waitForLines(logs, 1)
  const [line] = requestLines(logs)
  assert.equal(line?.account, account.id)
  assert.equal(line?.email, 'known@example.com')
  // A turn over WebSocket (the recommended transport) is logged the same way.
  const client = await openWs(`${stack.url.replace('http', 'ws')}/backend-api/codex/responses`)
  await client.turn({ ...responsesBody(), type: 'response.create' })
  await client.close()
  await waitForLines(logs, 2)
  const turn = requestLines(logs)[1]
  assert.equal(turn?.transport, 'websocket')
  assert.equal(turn?.account, account.id)
  assert.equal(turn?.email, 'known@example.com')
  for (const entry of logs) {
    assert.equal(typeof entry.time, 'string', JSON.stringify(entry))
    assert.match(entry.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  }
})
