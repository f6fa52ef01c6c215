import { test } from 'node:test'
import assert from 'node:assert/strict'
import { poolUsage } from '../../../src/pool/pool-usage.js'
import { newAccount, type Account, type QuotaSnapshot } from '../../../src/store/records.js'

const NOW = 1_760_000_000_000

function account (n: number, quota: Partial<QuotaSnapshot> | null, rest: Partial<Account> = {}): Account {
  const a = newAccount({ id: `a${n}`, email: null, accountId: `acct-${n}`, userId: null, plan: 'plus', tokens: { idToken: '', accessToken: '', refreshToken: '' }, addedAt: 0 })
  a.quota = quota === null ? null : { primary: null, secondary: null, planType: null, activeLimit: null, credits: {}, observedAt: NOW, ...quota }
  return Object.assign(a, rest)
}

test('windows whose reset has passed count as unused; never-measured accounts as unused; resting ones as used up', () => {
  const usage = poolUsage([
    account(1, { primary: { usedPercent: 80, windowMinutes: 300, resetsAt: NOW - 1000 } }),
    account(2, null),
    account(3, { primary: { usedPercent: 10.4, windowMinutes: 300, resetsAt: NOW + 60_500 } }, { disabledUntil: NOW + 120_000, disabledKind: 'cooling' })
  ], NOW)
  const primary = usage.rate_limit.primary_window!
  assert.equal(primary.used_percent, 33, '(0 + 0 + 100) / 3')
  assert.equal(primary.limit_window_seconds, 18_000)
  assert.equal(primary.reset_at, Math.ceil((NOW + 60_500) / 1000))
  assert.equal(primary.reset_after_seconds, 61)
  assert.equal(usage.rate_limit.secondary_window, null, 'no account reported one')
  assert.equal(usage.rate_limit.allowed, true)
  assert.equal(usage.plan_type, 'plus')
})

test('credits add up across the pool; the balance stays a string', () => {
  const usage = poolUsage([
    account(1, { credits: { 'has-credits': 'True', unlimited: 'false', balance: '12.5' } }),
    account(2, { credits: { 'has-credits': 'false', unlimited: '0', balance: '7.5' } })
  ], NOW)
  assert.deepEqual(usage.credits, { has_credits: true, unlimited: false, balance: '20' })
})

test('the plan is the most common one Codex can decode: a plan name it does not know never reaches it', () => {
  const plans = (...names: Array<string | null>): string => poolUsage(names.map((plan, n) => account(n, null, { plan })), NOW).plan_type
  assert.equal(plans('pro', 'Pro', 'plus'), 'pro', 'case does not matter')
  assert.equal(plans('chatgpt_ultra_2027', 'chatgpt_ultra_2027', 'team'), 'team', 'unknown names are not counted')
  assert.equal(plans('chatgpt_ultra_2027', null), 'plus', 'none known: plus')
})
