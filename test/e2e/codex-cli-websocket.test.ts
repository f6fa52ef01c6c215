import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { startStack } from '../helpers/stack.js'
import { CODEX_PROVIDER_ID, ensureCodexCli, runCodexExec } from '../support/codex-cli.js'

const API_KEY = 'e2e-api-key-0123456789'
const p = `model_providers.${CODEX_PROVIDER_ID}`

describe('the real Codex CLI in the recommended mode (provider "OpenAI" on /backend-api/codex, WebSocket)', { timeout: 20 * 60_000 }, () => {
  before(async () => { await ensureCodexCli() }, { timeout: 20 * 60_000 })

  it('probe', { timeout: 120_000 }, async (t) => {
    const stack = await startStack(t, { settings: { apiKey: [API_KEY] } })
    await stack.addAccount({ email: 'first@example.com' })
    const r = await runCodexExec({
      baseUrl: `${stack.url}/backend-api/codex`, prompt: 'Say hello.', apiKey: API_KEY, timeoutMs: 90_000,
      config: { [`${p}.name`]: 'OpenAI', [`${p}.supports_websockets`]: true, chatgpt_base_url: `${stack.url}/backend-api` }
    })
    console.log(r.code, r.stderr.slice(-3000), r.lastMessage)
    console.log(JSON.stringify(stack.fake.backend.requests.map((x) => [x.transport, x.method, x.path, x.status, x.body?.previous_response_id, x.body?.generate, (x.body?.input ?? []).length])))
    console.log(JSON.stringify(stack.logs.filter((l) => 'attempts' in l || (l.level as number) >= 40).map((l) => [l.msg, l.transport, l.status, l.err])))
    assert.equal(r.code, 0)
  })
})
