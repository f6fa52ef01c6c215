import { test } from 'node:test'
import assert from 'node:assert/strict'
import { postResponses, startStack } from '../helpers/stack.js'

/** Decodes a usage window the way Codex does (protocol §5.7): every field an integer. */
function decodeWindow (window: unknown): Record<string, number> {
  assert.equal(typeof window, 'object')
  const w = window as Record<string, unknown>
  assert.deepEqual(Object.keys(w).sort(), ['limit_window_seconds', 'reset_after_seconds', 'reset_at', 'used_percent'])
  for (const [key, value] of Object.entries(w)) assert.ok(Number.isInteger(value), `${key} must be an integer, got ${String(value)}`)
  return w as Record<string, number>
}

/** Decodes the whole answer with Codex's field types; returns it. */
function decodeUsage (answer: unknown): { plan_type: string, rate_limit: { allowed: boolean, limit_reached: boolean, primary_window: Record<string, number>, secondary_window: Record<string, number> | null }, credits: { has_credits: boolean, unlimited: boolean, balance: string } } {
  const a = answer as Record<string, any>
  assert.equal(typeof a.plan_type, 'string')
  assert.ok(['free', 'go', 'plus', 'pro', 'prolite', 'team', 'business', 'enterprise', 'edu'].includes(a.plan_type), `a plan Codex knows: ${String(a.plan_type)}`)
  assert.equal(typeof a.rate_limit.allowed, 'boolean')
  assert.equal(typeof a.rate_limit.limit_reached, 'boolean')
  decodeWindow(a.rate_limit.primary_window)
  if (a.rate_limit.secondary_window !== null) decodeWindow(a.rate_limit.secondary_window)
  assert.equal(typeof a.credits.has_credits, 'boolean')
  assert.equal(typeof a.credits.unlimited, 'boolean')
  assert.equal(typeof a.credits.balance, 'string')
  assert.ok(Array.isArray(a.additional_rate_limits))
  return a as any
}

test('/status usage: the pool\'s aggregate in the exact shape Codex decodes, on both usage paths', async (t) => {
  const stack = await startStack(t)
  const a = await stack.addAccount({ email: 'a@example.com', plan: 'pro' })
  const b = await stack.addAccount({ email: 'b@example.com', plan: 'pro' })
  const now = Math.floor(Date.now() / 1000)
  // A has used 30 % and then runs out; B has used 45.5 % (a float in the headers) and resets in 15 minutes.
  stack.fake.backend.setQuotaHeaders(a.accountId, { primaryUsedPercent: 30, primaryResetAt: now + 5000, secondaryUsedPercent: 10, secondaryResetAt: now + 3 * 86400 })
  stack.fake.backend.setQuotaHeaders(b.accountId, { primaryUsedPercent: 45.5, primaryResetAt: now + 900, secondaryUsedPercent: 20, secondaryResetAt: now + 2 * 86400 })
  await (await postResponses(stack)).text()
  stack.fake.backend.setExhausted(a.accountId, { resetsAt: now + 7200, via: 'body' })
  const moved = await postResponses(stack)
  await moved.text()
  assert.equal(moved.headers.get('x-codex-eq-account'), b.id)

  const calls = stack.fake.backend.requests.length
  for (const path of ['/backend-api/wham/usage', '/api/codex/usage']) {
    const response = await fetch(`${stack.url}${path}`, { headers: { authorization: 'Bearer the-client-own-chatgpt-token' } })
    assert.equal(response.status, 200, path)
    assert.match(response.headers.get('content-type') ?? '', /application\/json/)
    const usage = decodeUsage(await response.json())
    assert.equal(usage.plan_type, 'pro')
    assert.equal(usage.rate_limit.allowed, true)
    assert.equal(usage.rate_limit.limit_reached, false)
    const primary = usage.rate_limit.primary_window
    assert.equal(primary.used_percent, 73, 'A out (100) and B at 45.5: the pool has 27 % left')
    assert.equal(primary.limit_window_seconds, 300 * 60)
    assert.ok(Math.abs(primary.reset_at - (now + 900)) <= 2, 'the next reset: B\'s window')
    assert.ok(Math.abs(primary.reset_after_seconds - 900) <= 5)
    const secondary = usage.rate_limit.secondary_window!
    assert.equal(secondary.used_percent, 60)
    assert.ok(Math.abs(secondary.reset_at - (now + 7200)) <= 2, 'usage frees up when A comes back')
  }
  assert.equal(stack.fake.backend.requests.length, calls, 'answered from what the pool knows: no upstream call, no client token forwarded')

  // Everyone out: not allowed, limit reached, still integers.
  stack.fake.backend.setExhausted(b.accountId, { resetsAt: now + 1800, via: 'body' })
  assert.equal((await postResponses(stack)).status, 429)
  const out = decodeUsage(await (await fetch(`${stack.url}/backend-api/wham/usage`)).json())
  assert.equal(out.rate_limit.allowed, false)
  assert.equal(out.rate_limit.limit_reached, true)
  assert.equal(out.rate_limit.primary_window.used_percent, 100)
})

test('/status usage honours API keys, and an empty pool still answers in shape', async (t) => {
  const stack = await startStack(t, { settings: { apiKey: ['client-key-0123456789'], adminToken: 'admin-token-0123456789' } })
  assert.equal((await fetch(`${stack.url}/backend-api/wham/usage`)).status, 401)
  const response = await fetch(`${stack.url}/backend-api/wham/usage`, { headers: { authorization: 'Bearer client-key-0123456789' } })
  assert.equal(response.status, 200)
  const usage = await response.json() as Record<string, any>
  assert.equal(usage.rate_limit.primary_window, null)
  assert.equal(usage.rate_limit.allowed, false)
})
