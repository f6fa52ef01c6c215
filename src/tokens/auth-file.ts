import type { Account } from '../store/records.js'
import type { ImportInput } from '../pool/account-pool.js'

/**
 * Codex's own `auth.json` (~/.codex/auth.json), the format accounts are imported from and
 * exported to, and the bare token triple the API also accepts.
 */
export interface CodexAuthFile {
  auth_mode: 'chatgpt'
  OPENAI_API_KEY: null
  tokens: { id_token: string, access_token: string, refresh_token: string, account_id: string }
  last_refresh: string
}

export class AuthFileError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'AuthFileError'
  }
}

const MAX_TOKEN_LENGTH = 64 * 1024

function tokenField (source: Record<string, unknown>, name: string): string {
  const value = source[name]
  if (typeof value !== 'string' || value === '') throw new AuthFileError(`${name} is missing`)
  if (value.length > MAX_TOKEN_LENGTH) throw new AuthFileError(`${name} is too long`)
  return value
}

/** Reads either a Codex auth.json document or `{id_token, access_token, refresh_token, account_id?}`. */
export function parseImport (document: unknown): ImportInput {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) throw new AuthFileError('expected a JSON object')
  const record = document as Record<string, unknown>
  const inner = record.tokens
  const source = inner !== undefined && inner !== null
    ? (typeof inner === 'object' && !Array.isArray(inner) ? inner as Record<string, unknown> : null)
    : record
  if (source === null) throw new AuthFileError('tokens must be an object')
  if (inner === undefined && typeof record.OPENAI_API_KEY === 'string') throw new AuthFileError('this auth.json holds an API key, not a ChatGPT login')
  const accountId = source.account_id
  if (accountId !== undefined && accountId !== null && (typeof accountId !== 'string' || accountId === '' || accountId.length > 200)) {
    throw new AuthFileError('account_id must be a non-empty string')
  }
  let lastRefreshAt: number | null = null
  if (typeof record.last_refresh === 'string') {
    const parsed = Date.parse(record.last_refresh)
    lastRefreshAt = Number.isFinite(parsed) ? parsed : null
  }
  return {
    idToken: tokenField(source, 'id_token'),
    accessToken: tokenField(source, 'access_token'),
    refreshToken: tokenField(source, 'refresh_token'),
    accountId: typeof accountId === 'string' ? accountId : null,
    lastRefreshAt,
    force: record.force === true
  }
}

export function toCodexAuthFile (account: Account): CodexAuthFile {
  return {
    auth_mode: 'chatgpt',
    OPENAI_API_KEY: null,
    tokens: {
      id_token: account.tokens.idToken,
      access_token: account.tokens.accessToken,
      refresh_token: account.tokens.refreshToken,
      account_id: account.accountId
    },
    last_refresh: new Date(account.lastRefreshAt ?? Date.now()).toISOString()
  }
}
