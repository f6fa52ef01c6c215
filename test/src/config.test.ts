import { test } from 'node:test'
import assert from 'node:assert/strict'
import { resolve } from 'node:path'
import { ConfigError, loadConfig } from '../../src/config.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE

test('with nothing set, the defaults of the config table', () => {
  const config = loadConfig({}, {})
  assert.equal(config.host, '127.0.0.1')
  assert.equal(config.port, 1456)
  assert.equal(config.authsDir, resolve('./auths'))
  assert.equal(config.upstream, 'https://chatgpt.com/backend-api/codex')
  assert.equal(config.issuer, 'https://auth.openai.com')
  assert.equal(config.callbackPort, 1455)
  assert.equal(config.cooldownMs, 3 * HOUR)
  assert.equal(config.adminToken, null)
  assert.deepEqual(config.apiKeys, [])
  assert.equal(config.logLevel, 'info')
  assert.equal(config.bodyLimit, 100 * 1024 * 1024, 'request bodies up to 100 MiB')
  assert.ok(config.streamIdleTimeoutMs >= 10 * MINUTE, 'a silent stream may last at least 10 minutes')
  assert.equal(config.requestBodyTimeoutMs, MINUTE, 'a request must arrive within 60 s')
  assert.equal(config.maxBufferedBytes, 1024 ** 3, 'at most 1 GiB of request bodies held')
  assert.equal(config.websocket, true, 'WebSocket turns are served')
})

// Each row: commander's attribute, the env var, a flag value, an env value, and what the flag's value reads as.
const rows: Array<[string, string, string | string[], string, string, unknown]> = [
  ['host', 'CODEX_EQ_HOST', '::1', '0.0.0.0', 'host', '::1'],
  ['port', 'CODEX_EQ_PORT', '2001', '2002', 'port', 2001],
  ['authsDir', 'CODEX_EQ_AUTHS_DIR', '/var/lib/ceq', '/tmp/other', 'authsDir', '/var/lib/ceq'],
  ['upstream', 'CODEX_EQ_UPSTREAM', 'http://127.0.0.1:9/backend-api/codex/', 'http://127.0.0.1:8/x', 'upstream', 'http://127.0.0.1:9/backend-api/codex'],
  ['issuer', 'CODEX_EQ_ISSUER', 'http://127.0.0.1:9', 'http://127.0.0.1:8', 'issuer', 'http://127.0.0.1:9'],
  ['callbackPort', 'CODEX_EQ_CALLBACK_PORT', '1457', '1458', 'callbackPort', 1457],
  ['cooldown', 'CODEX_EQ_COOLDOWN', '90m', '2h', 'cooldownMs', 90 * MINUTE],
  ['adminToken', 'CODEX_EQ_ADMIN_TOKEN', 'flag-admin-token-123', 'env-admin-token-123', 'adminToken', 'flag-admin-token-123'],
  ['apiKey', 'CODEX_EQ_API_KEYS', ['flag-key-0123456789', 'flag-key-9876543210'], 'env-key-0123456789', 'apiKeys', ['flag-key-0123456789', 'flag-key-9876543210']],
  ['logLevel', 'CODEX_EQ_LOG_LEVEL', 'warn', 'debug', 'logLevel', 'warn'],
  ['websocket', 'CODEX_EQ_WEBSOCKET', 'on', 'off', 'websocket', true],
  ['modelAlias', 'CODEX_EQ_MODEL_ALIASES', ['gpt-5-high=gpt-5-codex:high', 'claude-*=gpt-5.3-codex'], 'x=y', 'modelAliases', [{ pattern: 'gpt-5-high', model: 'gpt-5-codex', effort: 'high' }, { pattern: 'claude-*', model: 'gpt-5.3-codex', effort: null }]]
]

for (const [attribute, env, flagValue, envValue, key, expected] of rows) {
  test(`${env}: read from the environment, and the flag wins over it`, () => {
    const fromEnv = loadConfig({}, { [env]: envValue }) as unknown as Record<string, unknown>
    assert.notDeepEqual(fromEnv[key], (loadConfig({}, {}) as unknown as Record<string, unknown>)[key], 'the env var changes the setting')
    const both = loadConfig({ [attribute]: flagValue }, { [env]: envValue }) as unknown as Record<string, unknown>
    assert.deepEqual(both[key], expected)
  })
}

test('CODEX_EQ_API_KEYS is comma-separated (spaces and empty items ignored)', () => {
  const config = loadConfig({}, { CODEX_EQ_API_KEYS: 'first-key-0123456789, second-key-0123456789,,' })
  assert.deepEqual(config.apiKeys, ['first-key-0123456789', 'second-key-0123456789'])
})

test('durations read as documented', () => {
  const cases: Array<[string, number]> = [['3h', 3 * HOUR], ['90m', 90 * MINUTE], ['45s', 45_000], ['250ms', 250], ['1d', 24 * HOUR], ['120', 120_000], ['1.5h', 1.5 * HOUR]]
  for (const [text, ms] of cases) assert.equal(loadConfig({ cooldown: text }, {}).cooldownMs, ms, text)
})

test('sizes read as documented', () => {
  assert.equal(loadConfig({ bodyLimit: '64kib' }, {}).bodyLimit, 64 * 1024)
  assert.equal(loadConfig({}, { CODEX_EQ_BODY_LIMIT: '2mb' }).bodyLimit, 2 * 1024 * 1024)
})

test('an empty env var counts as unset', () => {
  assert.equal(loadConfig({}, { CODEX_EQ_PORT: '' }).port, 1456)
})

// A bad value of each kind, and the name the error must carry (the flag's or the env var's).
const bad: Array<[string, string, string]> = [
  ['port', 'CODEX_EQ_PORT', '70000'],
  ['port', 'CODEX_EQ_PORT', 'http'],
  ['callbackPort', 'CODEX_EQ_CALLBACK_PORT', '-1'],
  ['cooldown', 'CODEX_EQ_COOLDOWN', 'soon'],
  ['cooldown', 'CODEX_EQ_COOLDOWN', '0'],
  ['upstream', 'CODEX_EQ_UPSTREAM', 'ftp://example.com'],
  ['issuer', 'CODEX_EQ_ISSUER', 'not a url'],
  ['adminToken', 'CODEX_EQ_ADMIN_TOKEN', 'short'],
  ['logLevel', 'CODEX_EQ_LOG_LEVEL', 'loud'],
  ['bodyLimit', 'CODEX_EQ_BODY_LIMIT', '12 parsecs'],
  ['host', 'CODEX_EQ_HOST', 'bad host!'],
  ['streamIdleTimeout', 'CODEX_EQ_STREAM_IDLE_TIMEOUT', '-5m'],
  ['websocket', 'CODEX_EQ_WEBSOCKET', 'maybe']
]

for (const [attribute, env, value] of bad) {
  const flag = `--${attribute.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`
  test(`${flag} / ${env} = ${JSON.stringify(value)} is refused, naming the setting`, () => {
    assert.throws(() => loadConfig({ [attribute]: value }, {}), (err: unknown) => err instanceof ConfigError && err.setting === flag && err.message.startsWith(`invalid ${flag}:`))
    assert.throws(() => loadConfig({}, { [env]: value }), (err: unknown) => err instanceof ConfigError && err.setting === env && err.message.startsWith(`invalid ${env}:`))
  })
}

test('a bad API key in the comma-separated list is refused', () => {
  assert.throws(() => loadConfig({}, { CODEX_EQ_API_KEYS: 'good-key-0123456789,short' }), (err: unknown) => err instanceof ConfigError && err.setting === 'CODEX_EQ_API_KEYS')
  assert.throws(() => loadConfig({ apiKey: ['short'] }, {}), (err: unknown) => err instanceof ConfigError && err.setting === '--api-key')
})

test('model aliases: Claude\'s families by default, comma-separated in the env, a bad entry refused by name', () => {
  assert.deepEqual(loadConfig({}, {}).modelAliases.map((alias) => alias.pattern), ['claude-*opus*', 'claude-*sonnet*', 'claude-*haiku*'])
  assert.deepEqual(loadConfig({}, { CODEX_EQ_MODEL_ALIASES: 'a=b, c*=d:low' }).modelAliases, [{ pattern: 'a', model: 'b', effort: null }, { pattern: 'c*', model: 'd', effort: 'low' }])
  assert.throws(() => loadConfig({ modelAlias: ['a=b:extreme'] }, {}), (err: ConfigError) => err instanceof ConfigError && /--model-alias/.test(err.message) && /effort/.test(err.message))
  assert.throws(() => loadConfig({}, { CODEX_EQ_MODEL_ALIASES: 'no-equals-sign' }), /CODEX_EQ_MODEL_ALIASES/)
})
