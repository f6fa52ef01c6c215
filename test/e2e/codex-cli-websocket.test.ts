import assert from 'node:assert/strict'
import { before, describe, it, type TestContext } from 'node:test'
import { startStack, type Stack } from '../helpers/stack.js'
import { CODEX_PROVIDER_ID, ensureCodexCli, runCodexExec, type CodexExecResult } from '../support/codex-cli.js'

const API_KEY = 'e2e-api-key-0123456789'
const p = `model_providers.${CODEX_PROVIDER_ID}`

/**
 * The README's recommended setup: a provider named "OpenAI" (so Codex uses WebSocket and remote
 * compaction) on the pool's `/backend-api/codex`, its API key from `env_key`, and `/status` usage
 * from the pool through `chatgpt_base_url`.
 */
function recommended (stack: Stack, prompt: string, config: Record<string, string | number | boolean> = {}): Promise<CodexExecResult> {
  return runCodexExec({
    baseUrl: `${stack.url}/backend-api/codex`,
    prompt,
    apiKey: API_KEY,
    timeoutMs: 120_000,
    config: { [`${p}.name`]: 'OpenAI', [`${p}.supports_websockets`]: true, chatgpt_base_url: `${stack.url}/backend-api`, ...config }
  })
}

async function stackForCli (t: TestContext): Promise<Stack> {
  return await startStack(t, { settings: { apiKey: [API_KEY] } })
}

const inputTypes = (body: any): string[] => (Array.isArray(body?.input) ? body.input as any[] : []).map((item) => String(item.type))

describe('the real Codex CLI in the recommended mode (WebSocket on /backend-api/codex)', { timeout: 20 * 60_000 }, () => {
  before(async () => { await ensureCodexCli() }, { timeout: 20 * 60_000 })

  it('runs its turns over WebSocket: a tool follow-up on the same connection carries previous_response_id and only the new item', { timeout: 180_000 }, async (t) => {
    const stack = await stackForCli(t)
    const account = await stack.addAccount({ email: 'first@example.com' })
    stack.fake.backend.script(account.accountId, { kind: 'tool_call', cmd: 'echo tool-ran' })
    const r = await recommended(stack, 'Run a tool, then say hello.')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.lastMessage?.trim(), 'served by first@example.com')
    const seen = stack.fake.backend.requests
    assert.ok(seen.length >= 2)
    assert.deepEqual(seen.filter((req) => req.transport !== 'websocket').map((req) => req.path), [], 'no HTTP fallback')
    assert.equal(new Set(seen.map((req) => req.connection)).size, 1, 'one upstream connection')
    const call = seen.findIndex((req) => (req.body?.input as unknown[]).length > 0)
    const followUp = seen[call + 1]!
    assert.ok(followUp !== undefined, 'a follow-up after the tool ran')
    assert.equal(typeof followUp.body.previous_response_id, 'string')
    assert.deepEqual(inputTypes(followUp.body), ['function_call_output'], 'only the new item')
    assert.match(JSON.stringify(followUp.body.input), /tool-ran/)
    assert.equal(followUp.headers.authorization, `Bearer ${account.tokens.access_token}`, 'the account\'s token, not the API key')
  })

  it('a turn during which the account hits its limit completes on another account (exit 0)', { timeout: 240_000 }, async (t) => {
    const stack = await stackForCli(t)
    const first = await stack.addAccount({ email: 'first@example.com' })
    const second = await stack.addAccount({ email: 'second@example.com' })
    // The prewarm is served by the first account, then the turn chained to it hits the limit.
    stack.fake.backend.script(first.accountId, { kind: 'usage_limit', resetsInSeconds: 3600 })
    const r = await recommended(stack, 'Hello while the limit hits.')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.lastMessage?.trim(), 'served by second@example.com: Hello while the limit hits.')
    // A status is a word of its own: the session id the CLI prints (a UUID) may hold the digits.
    assert.doesNotMatch(r.stderr, /usage limit|\b429\b/i, 'the CLI saw no limit')
    const seen = stack.fake.backend.requests
    assert.deepEqual(seen.filter((req) => req.transport !== 'websocket').map((req) => req.path), [], 'no HTTP fallback')
    assert.ok(seen.some((req) => req.accountId === first.accountId && req.status === 429))
    const last = seen.at(-1)!
    assert.equal(last.accountId, second.accountId)
    assert.equal(last.status, 200)
    const accounts = await (await fetch(`${stack.url}/accounts`)).json() as Array<Record<string, unknown>>
    assert.equal(accounts[0]!.status, 'cooling')
    assert.ok(stack.logs.some((line) => /chained turn moved/.test(String(line.msg))), 'the chain moved: Codex was asked for the whole history, and resent it')
    assert.ok(inputTypes(last.body).length > 1 && last.body.previous_response_id == null, 'the whole history, unchained')
  })

  it('compacts remotely over WebSocket, and the compacted history goes on', { timeout: 180_000 }, async (t) => {
    const stack = await stackForCli(t)
    const account = await stack.addAccount({ email: 'first@example.com' })
    stack.fake.backend.script(account.accountId, { kind: 'tool_call', cmd: 'echo before-compaction' })
    const r = await recommended(stack, 'Work long enough to compact.', { model_auto_compact_token_limit: 2000 })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /context compacted/)
    const seen = stack.fake.backend.requests
    assert.deepEqual(seen.filter((req) => req.transport !== 'websocket').map((req) => req.path), [], 'no HTTP fallback')
    const trigger = seen.findIndex((req) => inputTypes(req.body).at(-1) === 'compaction_trigger')
    assert.ok(trigger !== -1, 'a compaction turn')
    const after = seen.slice(trigger + 1).find((req) => inputTypes(req.body).includes('compaction'))
    assert.ok(after !== undefined, 'the compaction item is replayed')
    assert.deepEqual(after.blobs.filter((blob) => blob.where === 'compaction'), [{ where: 'compaction', owner: account.accountId }])
    assert.equal(after.status, 200)
  })
})
