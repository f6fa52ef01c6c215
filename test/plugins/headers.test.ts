import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { responsesBody, startStack } from '../helpers/stack.js'

/** The headers the Codex CLI sends that the backend must get as they are (protocol §3). */
const PASSED = {
  originator: 'codex_exec',
  'user-agent': 'codex_exec/0.169.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.169.0)',
  'session-id': 'sess-42',
  session_id: 'sess-42-old',
  'thread-id': 'thread-42',
  'x-client-request-id': 'req-42',
  'x-codex-turn-state': 'state-blob',
  'x-codex-turn-metadata': '{"turn_id":"t1"}',
  'x-codex-window-id': 'thread-42:0',
  'x-codex-beta-features': 'remote_compaction_v2',
  'x-openai-subagent': 'review',
  accept: 'text/event-stream',
  'content-type': 'application/json'
}

/** What the client sends that must never reach the backend. */
const DROPPED = {
  authorization: 'Bearer client-own-chatgpt-token',
  'chatgpt-account-id': 'forged-account',
  cookie: 'session=abc',
  connection: 'keep-alive, x-hop-listed',
  'x-hop-listed': 'only for the next hop',
  'keep-alive': 'timeout=5',
  'proxy-authorization': 'Basic eDp5',
  te: 'trailers',
  'x-forwarded-for': '10.0.0.1',
  forwarded: 'for=10.0.0.1',
  'accept-encoding': 'gzip, br'
}

test('the client\'s headers pass through except its credentials, cookies and hop-by-hop headers; the account\'s are added', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount()
  // A 200 that tries to set a cookie of the account's session on the client.
  stack.fake.backend.script(account.accountId, { kind: 'status', status: 200, body: { ok: true }, headers: { 'set-cookie': '__cf_bm=account-session; Path=/', 'x-request-id': 'upstream-req-1' } })
  const payload = JSON.stringify(responsesBody())
  const answer = await new Promise<{ status: number, headers: Record<string, unknown>, body: string }>((resolve, reject) => {
    const req = httpRequest(`${stack.url}/v1/responses`, { method: 'POST', headers: { ...PASSED, ...DROPPED, 'content-length': String(Buffer.byteLength(payload)) } }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end(payload)
  })
  assert.equal(answer.status, 200)
  assert.deepEqual(JSON.parse(answer.body), { ok: true })
  assert.equal(answer.headers['set-cookie'], undefined, 'the upstream\'s cookies stay with the proxy')
  assert.equal(answer.headers['x-request-id'], 'upstream-req-1')
  assert.ok(answer.headers['x-codex-primary-used-percent'] !== undefined, 'quota headers reach the client')

  const seen = stack.fake.backend.requests[0]!.headers
  for (const [name, value] of Object.entries(PASSED)) assert.equal(seen[name], value, name)
  assert.equal(seen.authorization, `Bearer ${account.tokens.access_token}`)
  assert.equal(seen['chatgpt-account-id'], account.accountId)
  assert.equal(seen['content-length'], String(Buffer.byteLength(payload)), 'the body goes up with its length')
  assert.equal(seen['transfer-encoding'], undefined, 'the body does not go up chunked')
  for (const name of Object.keys(DROPPED)) {
    if (name === 'authorization' || name === 'chatgpt-account-id' || name === 'connection') continue
    assert.equal(seen[name], undefined, `${name} is not forwarded`)
  }
  assert.doesNotMatch(String(seen.connection ?? ''), /x-hop-listed/)
})
