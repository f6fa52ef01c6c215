import { isIP } from 'node:net'
import { resolve } from 'node:path'
import { parseDuration, parseSize } from './duration.js'
import { DEFAULT_MODEL_ALIASES, parseModelAliases, type ModelAlias } from './wire/clients/model-aliases.js'

/** Everything the service can be told, after validation. Times are milliseconds, sizes bytes. */
export interface Config {
  host: string
  port: number
  authsDir: string
  upstream: string
  issuer: string
  callbackPort: number
  cooldownMs: number
  adminToken: string | null
  apiKeys: string[]
  logLevel: LogLevel
  bodyLimit: number
  requestBodyTimeoutMs: number
  maxBufferedBytes: number
  streamIdleTimeoutMs: number
  upstreamHeadersTimeoutMs: number
  shutdownGraceMs: number
  usageProbeIntervalMs: number
  upstreamRestMs: number
  upstreamRestMaxMs: number
  streamHoldMs: number
  webhooks: string[]
  webhookSecret: string | null
  usageRetentionMs: number
  websocket: boolean
  modelAliases: ModelAlias[]
  /** A Redis shared by several instances (tokens, rests, the sticky choice live there, not in the auths dir); null: the token file. */
  redisUrl: string | null
  redisPrefix: string
  redisPassword: string | null
  /** This instance's name in a shared pool (leases, `last_served_by`, the metrics label). */
  instanceName: string | null
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
const LOG_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export class ConfigError extends Error {
  constructor (readonly setting: string, reason: string) {
    super(`invalid ${setting}: ${reason}`)
    this.name = 'ConfigError'
  }
}

type Raw = string | string[]

/** One row of the config table: the flag, the env var, the default and how to read a value. */
export interface SettingSpec<K extends keyof Config = keyof Config> {
  key: K
  flag: string
  env: string
  defaultValue: string | null
  valueName: string
  description: string
  repeatable?: boolean
  parse: (raw: Raw, flagName: string) => Config[K]
}

function single (raw: Raw): string {
  return Array.isArray(raw) ? raw[raw.length - 1] ?? '' : raw
}

function port (min: number) {
  return (raw: Raw, name: string): number => {
    const text = single(raw).trim()
    const value = Number(text)
    if (!/^\d+$/.test(text) || value < min || value > 65535) throw new ConfigError(name, `"${text}" is not a port number (${min}-65535)`)
    return value
  }
}

function duration (allowZero: boolean) {
  return (raw: Raw, name: string): number => {
    const text = single(raw)
    const ms = parseDuration(text)
    if (ms === null || (!allowZero && ms <= 0)) throw new ConfigError(name, `"${text}" is not a duration like 90s, 10m or 3h`)
    return ms
  }
}

function httpUrl (raw: Raw, name: string): string {
  const text = single(raw).trim()
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new ConfigError(name, `"${text}" is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(name, `"${text}" must be an http(s) URL`)
  if (url.search !== '' || url.hash !== '') throw new ConfigError(name, `"${text}" must not have a query or fragment`)
  return url.href.replace(/\/+$/, '')
}

/** A webhook: any http(s) URL (chat services put their secret in the path or the query). */
function webhookUrl (text: string, name: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new ConfigError(name, 'a webhook is not a URL')
  }
  // The value itself is not echoed: a webhook URL is often a credential.
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(name, `a webhook must be an http(s) URL, not ${url.protocol}`)
  return url.href
}

const MIN_SECRET_LENGTH = 12

function secret (raw: Raw, name: string): string {
  const text = single(raw)
  if (text.length < MIN_SECRET_LENGTH || /\s/.test(text)) throw new ConfigError(name, `must be at least ${MIN_SECRET_LENGTH} characters without spaces`)
  return text
}

/** A redis:// or rediss:// URL; the value is never echoed (it may hold a password). */
function redisUrl (raw: Raw, name: string): string {
  const text = single(raw).trim()
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new ConfigError(name, 'is not a URL (expected redis://host:6379/0 or rediss:// for TLS)')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new ConfigError(name, `must be a redis:// or rediss:// URL, not ${url.protocol}`)
  if (url.hostname === '') throw new ConfigError(name, 'names no host')
  const db = url.pathname.replace(/^\//, '')
  if (db !== '' && !/^\d+$/.test(db)) throw new ConfigError(name, 'the path must be a database number, like /0')
  return text
}

export const SETTINGS: SettingSpec[] = [
  {
    key: 'host', flag: '--host', env: 'CODEX_EQ_HOST', defaultValue: '127.0.0.1', valueName: 'address',
    description: 'address to listen on (anything but loopback needs --admin-token)',
    parse: (raw, name) => {
      const text = single(raw).trim()
      if (text === '' || (isIP(text) === 0 && !/^[a-z0-9.-]+$/i.test(text))) throw new ConfigError(name, `"${text}" is not an address`)
      return text
    }
  },
  { key: 'port', flag: '--port', env: 'CODEX_EQ_PORT', defaultValue: '1456', valueName: 'port', description: 'port of the proxy, API and dashboard (0 picks a free one)', parse: port(0) },
  {
    key: 'authsDir', flag: '--auths-dir', env: 'CODEX_EQ_AUTHS_DIR', defaultValue: './auths', valueName: 'dir',
    description: 'directory holding codex_tokens.json (created 0700)',
    parse: (raw, name) => {
      const text = single(raw).trim()
      if (text === '') throw new ConfigError(name, 'must not be empty')
      return resolve(text)
    }
  },
  { key: 'upstream', flag: '--upstream', env: 'CODEX_EQ_UPSTREAM', defaultValue: 'https://chatgpt.com/backend-api/codex', valueName: 'url', description: 'Codex backend that /v1/* is forwarded to', parse: httpUrl },
  { key: 'issuer', flag: '--issuer', env: 'CODEX_EQ_ISSUER', defaultValue: 'https://auth.openai.com', valueName: 'url', description: 'OpenAI OAuth issuer', parse: httpUrl },
  { key: 'callbackPort', flag: '--callback-port', env: 'CODEX_EQ_CALLBACK_PORT', defaultValue: '1455', valueName: 'port', description: 'port of the temporary OAuth callback listener (the issuer only allows 1455; 0 picks a free one, for tests)', parse: port(0) },
  { key: 'cooldownMs', flag: '--cooldown', env: 'CODEX_EQ_COOLDOWN', defaultValue: '3h', valueName: 'duration', description: 'how long a failing account rests when no reset time is known', parse: duration(false) },
  { key: 'adminToken', flag: '--admin-token', env: 'CODEX_EQ_ADMIN_TOKEN', defaultValue: null, valueName: 'token', description: 'bearer token required by the management API, login endpoints and dashboard data', parse: secret },
  {
    key: 'apiKeys', flag: '--api-key', env: 'CODEX_EQ_API_KEYS', defaultValue: null, valueName: 'key', repeatable: true,
    description: 'bearer key required on /v1/* (repeatable; env: comma-separated)',
    parse: (raw, name) => (Array.isArray(raw) ? raw : raw.split(',')).map((key) => key.trim()).filter((key) => key !== '').map((key) => secret(key, name))
  },
  {
    key: 'logLevel', flag: '--log-level', env: 'CODEX_EQ_LOG_LEVEL', defaultValue: 'info', valueName: 'level', description: `log level (${LOG_LEVELS.join(', ')})`,
    parse: (raw, name) => {
      const text = single(raw).trim().toLowerCase()
      if (!LOG_LEVELS.includes(text as LogLevel)) throw new ConfigError(name, `"${text}" is not one of ${LOG_LEVELS.join(', ')}`)
      return text as LogLevel
    }
  },
  {
    key: 'bodyLimit', flag: '--body-limit', env: 'CODEX_EQ_BODY_LIMIT', defaultValue: '100mib', valueName: 'size', description: 'largest /v1 request body accepted',
    parse: (raw, name) => {
      const bytes = parseSize(single(raw))
      if (bytes === null || bytes < 1024) throw new ConfigError(name, `"${single(raw)}" is not a size like 100mib (at least 1kib)`)
      return bytes
    }
  },
  { key: 'requestBodyTimeoutMs', flag: '--request-body-timeout', env: 'CODEX_EQ_REQUEST_BODY_TIMEOUT', defaultValue: '60s', valueName: 'duration', description: 'a request must have arrived in full this long after it began, or it is answered 408 (answers may stream for longer)', parse: duration(false) },
  {
    key: 'maxBufferedBytes', flag: '--max-buffered', env: 'CODEX_EQ_MAX_BUFFERED', defaultValue: '1gib', valueName: 'size', description: 'most /v1 request bytes held in memory at once, across all requests (kept for re-sending on failover); beyond it, 503 with Retry-After',
    parse: (raw, name) => {
      const bytes = parseSize(single(raw))
      if (bytes === null || bytes < 1024) throw new ConfigError(name, `"${single(raw)}" is not a size like 1gib (at least 1kib)`)
      return bytes
    }
  },
  { key: 'streamIdleTimeoutMs', flag: '--stream-idle-timeout', env: 'CODEX_EQ_STREAM_IDLE_TIMEOUT', defaultValue: '15m', valueName: 'duration', description: 'silence after which an upstream stream is given up (long reasoning turns are silent)', parse: duration(false) },
  { key: 'upstreamHeadersTimeoutMs', flag: '--upstream-headers-timeout', env: 'CODEX_EQ_UPSTREAM_HEADERS_TIMEOUT', defaultValue: '90s', valueName: 'duration', description: 'how long to wait for the upstream answer to start before failing over', parse: duration(false) },
  { key: 'shutdownGraceMs', flag: '--shutdown-grace', env: 'CODEX_EQ_SHUTDOWN_GRACE', defaultValue: '30s', valueName: 'duration', description: 'on SIGTERM, how long open streams may finish', parse: duration(true) },
  { key: 'upstreamRestMs', flag: '--upstream-rest', env: 'CODEX_EQ_UPSTREAM_REST', defaultValue: '30s', valueName: 'duration', description: 'first brief rest of an account after an upstream failure (5xx, overload, timeout); doubles while it repeats', parse: duration(false) },
  { key: 'upstreamRestMaxMs', flag: '--upstream-rest-max', env: 'CODEX_EQ_UPSTREAM_REST_MAX', defaultValue: '5m', valueName: 'duration', description: 'longest brief rest after upstream failures', parse: duration(false) },
  { key: 'streamHoldMs', flag: '--stream-hold', env: 'CODEX_EQ_STREAM_HOLD', defaultValue: '3s', valueName: 'duration', description: 'how long a stream\'s first events (no content yet) are held back so an overload in them fails over unseen (0: off)', parse: duration(true) },
  {
    key: 'webhooks', flag: '--webhook', env: 'CODEX_EQ_WEBHOOKS', defaultValue: null, valueName: 'url', repeatable: true,
    description: 'URL that gets a JSON POST when an account cools, is disabled or needs a login, the pool is exhausted, or an outage begins or ends (repeatable; env: comma-separated)',
    parse: (raw, name) => (Array.isArray(raw) ? raw : raw.split(',')).map((url) => url.trim()).filter((url) => url !== '').map((url) => webhookUrl(url, name))
  },
  { key: 'webhookSecret', flag: '--webhook-secret', env: 'CODEX_EQ_WEBHOOK_SECRET', defaultValue: null, valueName: 'secret', description: `signs every webhook body (HMAC-SHA256, header x-codex-eq-signature: t=<unix time>,v1=<hex>)`, parse: secret },
  {
    key: 'usageRetentionMs', flag: '--usage-retention', env: 'CODEX_EQ_USAGE_RETENTION', defaultValue: '90d', valueName: 'duration', description: 'how long the usage ledger keeps its hourly counts (at least 1d; 0: no ledger, nothing is counted)',
    parse: (raw, name) => {
      const ms = duration(true)(raw, name)
      if (ms > 0 && ms < 86_400_000) throw new ConfigError(name, `"${single(raw)}" is shorter than a day`)
      return ms
    }
  },
  {
    key: 'websocket', flag: '--websocket', env: 'CODEX_EQ_WEBSOCKET', defaultValue: 'on', valueName: 'on|off',
    description: 'the WebSocket transport on /responses (off: upgrades get 426 and Codex uses HTTP)',
    parse: (raw, name) => {
      const text = single(raw).trim().toLowerCase()
      if (['on', 'true', '1', 'yes'].includes(text)) return true
      if (['off', 'false', '0', 'no'].includes(text)) return false
      throw new ConfigError(name, `"${text}" is not on or off`)
    }
  },
  {
    key: 'modelAliases', flag: '--model-alias', env: 'CODEX_EQ_MODEL_ALIASES', defaultValue: DEFAULT_MODEL_ALIASES, valueName: 'alias', repeatable: true,
    description: 'model names of Chat Completions and Messages clients mapped to a backend model: pattern=model[:effort], * in a pattern matches anything (repeatable; env: comma-separated; replaces the defaults)',
    parse: (raw, name) => {
      try {
        return parseModelAliases((Array.isArray(raw) ? raw : raw.split(',')).filter((entry) => entry.trim() !== ''))
      } catch (err) {
        throw new ConfigError(name, (err as Error).message)
      }
    }
  },
  { key: 'redisUrl', flag: '--redis-url', env: 'CODEX_EQ_REDIS_URL', defaultValue: null, valueName: 'url', description: 'share the pool with other instances through Redis (redis://host:6379/0, rediss:// for TLS); the auths dir then holds no tokens', parse: redisUrl },
  {
    key: 'redisPrefix', flag: '--redis-prefix', env: 'CODEX_EQ_REDIS_PREFIX', defaultValue: 'codex-eq:', valueName: 'prefix', description: 'prefix of every Redis key and channel (one pool per prefix)',
    parse: (raw, name) => {
      const text = single(raw).trim()
      if (text === '' || /\s/.test(text)) throw new ConfigError(name, 'must be non-empty, without spaces')
      return text
    }
  },
  {
    key: 'redisPassword', flag: '--redis-password', env: 'CODEX_EQ_REDIS_PASSWORD', defaultValue: null, valueName: 'password', description: 'Redis password when the URL holds none (prefer the environment variable: flags show in ps)',
    parse: (raw) => single(raw)
  },
  {
    key: 'instanceName', flag: '--instance-name', env: 'CODEX_EQ_INSTANCE_NAME', defaultValue: null, valueName: 'name', description: 'this instance\'s name in a shared pool, one per running instance (default hostname:port)',
    parse: (raw, name) => {
      const text = single(raw).trim()
      if (!/^[\w.:@-]{1,100}$/.test(text)) throw new ConfigError(name, 'must be 1-100 letters, digits or . : @ _ -')
      return text
    }
  },
  { key: 'usageProbeIntervalMs', flag: '--usage-probe', env: 'CODEX_EQ_USAGE_PROBE', defaultValue: '0', valueName: 'duration', description: 'check cooling accounts\' quota upstream this often to lift stale cooldowns (0: off)', parse: duration(true) }
]

/** The camelCase name commander gives a flag (`--auths-dir` → `authsDir`). */
export function flagAttribute (flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase())
}

/**
 * Builds the config from flags (commander's parsed options; they win) and the environment,
 * validating every value. Throws ConfigError naming the first bad setting.
 */
export function loadConfig (flags: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = process.env, only?: Array<keyof Config>): Config {
  const config: Record<string, unknown> = {}
  for (const spec of SETTINGS) {
    if (only !== undefined && !only.includes(spec.key)) continue
    const fromFlag = flags[flagAttribute(spec.flag)]
    const fromEnv = env[spec.env]
    let raw: Raw | null = spec.defaultValue
    let name = spec.flag
    if (typeof fromFlag === 'string' || (Array.isArray(fromFlag) && fromFlag.length > 0)) {
      raw = fromFlag as Raw
    } else if (fromEnv !== undefined && fromEnv !== '') {
      raw = fromEnv
      name = spec.env
    }
    config[spec.key] = raw === null ? (spec.repeatable === true ? [] : null) : spec.parse(raw, name)
  }
  return config as unknown as Config
}

export function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
