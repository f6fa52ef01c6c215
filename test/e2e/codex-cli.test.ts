import assert from 'node:assert/strict'
import { before, describe, it, type TestContext } from 'node:test'
import pino from 'pino'
import { loggerOptions } from '../../src/logger.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { CODEX_PROVIDER_ID, ensureCodexCli, runCodexExec, type CodexExecResult } from '../support/codex-cli.js'

const API_KEY = 'e2e-api-key-0123456789'

type Line = Record<string, any>

/** The real app with an API key on /v1, its log lines collected. */
async function stackForCli (t: TestContext, settings: Record<string, string> = {}): Promise<{ stack: Stack, logs: Line[] }> {
  const logs: Line[] = []
  const logger = pino(loggerOptions('info'), { write (line: string) { logs.push(JSON.parse(line) as Line) } })
  const stack = await startStack(t, { settings: { apiKey: [API_KEY], ...settings }, build: { logger } })
  return { stack, logs }
}

/** One `codex exec` turn through the proxy, with no retries of its own: whatever it sees, it reports. */
async function codexTurn (stack: Stack, prompt: string): Promise<CodexExecResult> {
  return await runCodexExec({ baseUrl: `${stack.url}/v1`, prompt, apiKey: API_KEY, requestMaxRetries: 0, streamMaxRetries: 0, timeoutMs: 90_000 })
}

const proxiedLines = (logs: Line[]): Line[] => logs.filter((line) => 'attempts' in line)

describe('the real Codex CLI through the pool', { timeout: 20 * 60_000 }, () => {
  before(async () => { await ensureCodexCli() }, { timeout: 20 * 60_000 })

  it('runs a turn through the proxy', { timeout: 120_000 }, async (t) => {
    const { stack } = await stackForCli(t)
    const account = await stack.addAccount({ email: 'first@example.com' })
    const r = await codexTurn(stack, 'Say hello.')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.lastMessage?.trim(), 'served by first@example.com: Say hello.')
    const seen = stack.fake.backend.requests
    assert.equal(seen.length, 1)
    assert.equal(seen[0]!.path, '/backend-api/codex/responses')
    assert.equal(seen[0]!.headers.authorization, `Bearer ${account.tokens.access_token}`, 'the account\'s token, not the API key')
    assert.equal(seen[0]!.headers['chatgpt-account-id'], account.accountId)
    assert.equal(seen[0]!.headers.originator, 'codex_exec')
  })

  it('a turn during which the current account hits its usage limit is answered by the next one, unseen by the CLI', { timeout: 180_000 }, async (t) => {
    const { stack, logs } = await stackForCli(t)
    const first = await stack.addAccount({ email: 'first@example.com' })
    const second = await stack.addAccount({ email: 'second@example.com' })
    const warmUp = await codexTurn(stack, 'First turn.')
    assert.equal(warmUp.code, 0, warmUp.stderr)
    assert.equal(warmUp.lastMessage?.trim(), 'served by first@example.com: First turn.')

    stack.fake.backend.setExhausted(first.accountId, { resetsInSeconds: 3600 })
    const calls = stack.fake.backend.requests.length
    const lines = proxiedLines(logs).length
    const r = await codexTurn(stack, 'Second turn.')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.lastMessage?.trim(), 'served by second@example.com: Second turn.')
    // A status is a word of its own: the session id the CLI prints (a UUID) may hold the digits.
    assert.doesNotMatch(r.stderr, /usage limit|\b429\b|Reconnecting/i, 'the CLI saw no failure')

    const upstream = stack.fake.backend.requests.slice(calls).map((req) => [req.accountId, req.status])
    assert.deepEqual(upstream, [[first.accountId, 429], [second.accountId, 200]], 'the 429 stayed inside the proxy')
    const turnLines = proxiedLines(logs).slice(lines)
    assert.equal(turnLines.length, 1, 'one request from the CLI')
    assert.equal(turnLines[0]!.account, second.id)
    assert.equal(turnLines[0]!.attempts, 2)
    const views = await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, any>>
    assert.deepEqual(views.map((v) => [v.id, v.status, v.current]), [[first.id, 'cooling', false], [second.id, 'active', true]])
  })

  it('with the whole pool out, the CLI ends the turn with the usage-limit message', { timeout: 120_000 }, async (t) => {
    const { stack } = await stackForCli(t)
    const first = await stack.addAccount()
    const second = await stack.addAccount()
    const now = Math.floor(Date.now() / 1000)
    stack.fake.backend.setExhausted(first.accountId, { resetsAt: now + 7200 })
    stack.fake.backend.setExhausted(second.accountId, { resetsAt: now + 1800 })
    // The CLI shows the earliest reset in local time, with its date when that is not today by the
    // CLI's clock (read while the turn runs: before and after it, in case midnight falls between).
    const earliest = new Date((now + 1800) * 1000)
    const before = retryTime(earliest, new Date())
    const r = await codexTurn(stack, 'Anyone there?')
    const shown = [...new Set([before, retryTime(earliest, new Date())])].join('|')
    assert.notEqual(r.code, 0)
    assert.equal(r.timedOut, false)
    assert.equal(r.lastMessage, null)
    assert.match(r.stderr, new RegExp(`hit your usage limit.*try again at (${shown})\\.`, 'i'))
    assert.equal(stack.fake.backend.requests.length, 2, 'each account asked once, then the pool answered')
  })
  it('an upstream outage of a few seconds during a turn: the CLI retries the passed-on 5xx and the turn completes once the backend is back', { timeout: 180_000 }, async (t) => {
    const { stack } = await stackForCli(t)
    await stack.addAccount({ email: 'first@example.com' })
    await stack.addAccount({ email: 'second@example.com' })
    // Three seconds from the CLI's first request, however long the CLI takes to start.
    stack.fake.backend.setOutage({ status: 502, forMs: 3_000, fromFirstRequest: true })
    // The CLI's own retry counts (4 per request, 5 per turn): it sees the 502s and keeps going.
    const r = await runCodexExec({ baseUrl: `${stack.url}/v1`, prompt: 'Still there?', apiKey: API_KEY, timeoutMs: 90_000 })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.lastMessage ?? '', /served by (first|second)@example.com: Still there\?/)
    assert.doesNotMatch(r.stderr, /usage limit/i)
    assert.ok(stack.fake.backend.outageRequests >= 2)
    const views = await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, any>>
    assert.deepEqual(views.map((v) => v.status), ['active', 'active'], 'no account paid for the outage')
  })

  it('an overload inside the first account\'s stream: the turn completes on the second, the CLI never sees it', { timeout: 120_000 }, async (t) => {
    const { stack } = await stackForCli(t)
    const first = await stack.addAccount({ email: 'first@example.com' })
    await stack.addAccount({ email: 'second@example.com' })
    stack.fake.backend.script(first.accountId, { kind: 'stream_failed', code: 'server_is_overloaded', message: 'Our servers are currently overloaded. Please try again later.' })
    const r = await codexTurn(stack, 'Busy?')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.lastMessage?.trim(), 'served by second@example.com: Busy?')
    assert.doesNotMatch(r.stderr, /capacity|overloaded/i)
  })

  it('an empty pool: the CLI stops at once, showing why and the command that helps', { timeout: 60_000 }, async (t) => {
    const { stack } = await stackForCli(t)
    const turns: string[] = []
    stack.app.server.on('request', (req: { method?: string, url?: string }) => { if (req.method === 'POST') turns.push(req.url ?? '') })
    const started = Date.now()
    // Default retry counts: a 5xx would keep the CLI retrying for ~26 s; the pool's 400 is final.
    const r = await runCodexExec({ baseUrl: `${stack.url}/v1`, prompt: 'Hello?', apiKey: API_KEY, timeoutMs: 30_000 })
    const took = Date.now() - started
    assert.notEqual(r.code, 0)
    assert.equal(r.timedOut, false)
    assert.match(r.stderr, /no accounts yet/)
    assert.match(r.stderr, /codex-eq login --server http:\/\/127\.0\.0\.1:\d+/)
    assert.deepEqual(turns, ['/v1/responses'], 'one request: the CLI did not retry')
    // The CLI's own start is most of this (about 1 s on a quiet machine); retrying would take ~26 s.
    assert.ok(took < 8_000, `shown within 8 s: ${took} ms`)
    assert.equal(stack.fake.backend.requests.length, 0)
  })

  it('with --websocket off, a provider that asks for WebSocket gets a 426 and switches the session to HTTP at once', { timeout: 120_000 }, async (t) => {
    const { stack, logs } = await stackForCli(t, { websocket: 'off' })
    await stack.addAccount({ email: 'first@example.com' })
    const upgrades: string[] = []
    stack.app.server.on('request', (req: { headers: Record<string, unknown>, url?: string }) => { if (req.headers.upgrade !== undefined) upgrades.push(`${String(req.headers.upgrade)} ${req.url ?? ''}`) })
    const started = Date.now()
    const r = await runCodexExec({
      baseUrl: `${stack.url}/v1`,
      prompt: 'Over HTTP?',
      apiKey: API_KEY,
      requestMaxRetries: 0,
      streamMaxRetries: 0,
      timeoutMs: 60_000,
      config: { [`model_providers.${CODEX_PROVIDER_ID}.name`]: 'OpenAI', [`model_providers.${CODEX_PROVIDER_ID}.supports_websockets`]: true }
    })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.lastMessage?.trim(), 'served by first@example.com: Over HTTP?')
    assert.deepEqual(upgrades, ['websocket /v1/responses'], 'the CLI asked for a WebSocket once and took the 426')
    assert.ok(Date.now() - started < 6_000, 'no WebSocket retries first')
    assert.equal(stack.fake.backend.requests.length, 1)
    assert.equal(proxiedLines(logs).length, 1)
  })
})

/** A reset time as the CLI writes it: `3:05 PM` on the same local day, else `Nov 30th, 2026 12:25 AM`. */
function retryTime (at: Date, now: Date): string {
  const time = `${at.getHours() % 12 || 12}:${String(at.getMinutes()).padStart(2, '0')} ${at.getHours() < 12 ? 'AM' : 'PM'}`
  if (at.toDateString() === now.toDateString()) return time
  const day = at.getDate()
  const suffix = day >= 11 && day <= 13 ? 'th' : ['th', 'st', 'nd', 'rd'][day % 10] ?? 'th'
  return `${at.toLocaleString('en-US', { month: 'short' })} ${day}${suffix}, ${at.getFullYear()} ${time}`
}
