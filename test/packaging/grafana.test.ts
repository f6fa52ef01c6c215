import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { apiCall } from '../helpers/api-call.js'
import { postResponses, startStack } from '../helpers/stack.js'

interface Panel { title: string, targets: Array<{ expr: string }> }

test('the Grafana dashboard queries only series /metrics has, the per-key ones among them', async (t) => {
  const dashboard = JSON.parse(readFileSync(join(process.cwd(), 'scripts', 'grafana-dashboard.json'), 'utf8')) as { panels: Panel[] }
  const stack = await startStack(t)
  await stack.addAccount()
  const secret = (await apiCall(stack, 'POST', '/keys', { name: 'alice' })).json.secret as string
  await (await postResponses(stack, undefined, { authorization: `Bearer ${secret}` })).text()
  const metrics = (await apiCall(stack, 'GET', '/metrics')).text
  const known = new Set([...metrics.matchAll(/^# TYPE (\w+) (\w+)$/gm)].flatMap(([, name, type]) => type === 'histogram' ? [`${name!}_bucket`, `${name!}_sum`, `${name!}_count`] : [name!]))
  const used = new Set<string>()
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, panel.title)
    for (const target of panel.targets) {
      for (const [name] of target.expr.matchAll(/codex_eq_\w+/g)) {
        assert.ok(known.has(name), `${panel.title}: ${name} is in /metrics`)
        used.add(name)
      }
    }
  }
  for (const name of ['codex_eq_key_requests_total', 'codex_eq_key_tokens_total', 'codex_eq_account_tokens_total', 'codex_eq_requests_total']) assert.ok(used.has(name), `the dashboard uses ${name}`)
})
