import type { ImportOutcome } from '../pool/account-pool.js'
import type { AccountView } from '../pool/account-view.js'
import type { AuditEntry } from '../audit/audit-log.js'
import type { KeyView } from '../pool/client-keys.js'
import type { ActivityHour, RecentRequest } from '../pool/request-history.js'
import type { QuotaHistory, UsageReport } from '../store/usage-ledger.js'
import { UserError } from './user-error.js'

const REQUEST_TIMEOUT_MS = 60_000

/**
 * Reads `--server`: an http(s) URL, possibly with a path prefix (behind a reverse proxy). The Codex
 * CLI's `base_url` (`…/v1`) is understood as the server it points at: under `/v1` is the proxy, and a
 * management call sent there would go to the Codex backend with a pool account's token.
 */
export function parseServerUrl (text: string): string {
  let url: URL
  try {
    url = new URL(text.trim())
  } catch {
    throw new UserError(`--server "${text}" is not a URL; give the address of the codex-eq server, like http://my-server:1456`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UserError(`--server "${text}" must be an http:// or https:// URL`)
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new UserError(`--server "${text}" must be just the server's address, like http://my-server:1456 (no query, fragment or user name)`)
  }
  // Either of the addresses Codex is given (…/v1 or …/backend-api/codex) leads to the server itself.
  url.pathname = url.pathname.replace(/\/+$/, '').replace(/\/(v1|backend-api\/codex)(\/.*)?$/, '')
  return url.href.replace(/\/+$/, '')
}

/** The management API of a running codex-eq server, with the admin token when there is one. */
export class ServerClient {
  constructor (readonly base: string, private readonly adminToken: string | null) {}

  async listAccounts (): Promise<AccountView[]> {
    return (await this.call('GET', '/accounts')).body as AccountView[]
  }

  async importTokens (body: unknown): Promise<{ view: AccountView, created: boolean, outcome: ImportOutcome }> {
    const answer = await this.call('POST', '/accounts/import', body)
    const outcome = answer.status === 201 ? 'created' : answer.headers.get('x-codex-eq-import') === 'unchanged' ? 'unchanged' : 'updated'
    return { view: answer.body as AccountView, created: answer.status === 201, outcome }
  }

  async removeAccount (id: string): Promise<void> {
    await this.call('DELETE', `/accounts/${encodeURIComponent(id)}`)
  }

  /** `POST /accounts/:id/refresh|enable|select`: answers the account as it is afterwards. */
  async accountAction (id: string, action: 'refresh' | 'enable' | 'select'): Promise<AccountView> {
    return (await this.call('POST', `/accounts/${encodeURIComponent(id)}/${action}`)).body as AccountView
  }

  /** `PATCH /accounts/:id`: answers the account as it is afterwards. */
  async updateAccount (id: string, changes: { proxy: string | null }): Promise<AccountView> {
    return (await this.call('PATCH', `/accounts/${encodeURIComponent(id)}`, changes)).body as AccountView
  }

  async listKeys (): Promise<KeyView[]> {
    return (await this.call('GET', '/keys')).body as KeyView[]
  }

  /** Makes a key: the answer holds its secret, the only time it is ever shown. */
  async createKey (body: { name: string, daily_token_limit?: number, expires_at?: string }): Promise<KeyView & { secret: string }> {
    return (await this.call('POST', '/keys', body)).body as KeyView & { secret: string }
  }

  async deleteKey (id: string): Promise<void> {
    await this.call('DELETE', `/keys/${encodeURIComponent(id)}`)
  }

  /** `GET /usage`: token totals per group (account, key or model) and per hour or day. */
  async usage (query: { by?: string, bucket?: string, from?: string, to?: string }): Promise<UsageReport> {
    return (await this.call('GET', `/usage${queryString(query)}`)).body as UsageReport
  }

  /** `GET /usage/quota`: the accounts' quota windows over time. */
  async quotaHistory (query: { from?: string, to?: string }): Promise<QuotaHistory> {
    return (await this.call('GET', `/usage/quota${queryString(query)}`)).body as QuotaHistory
  }

  /** `GET /requests/recent`: the last `/v1` requests, newest first. */
  async recentRequests (query: { limit?: string }): Promise<RecentRequest[]> {
    return (await this.call('GET', `/requests/recent${queryString(query)}`)).body as RecentRequest[]
  }

  /** `GET /requests/activity`: requests by outcome and failovers by cause, per hour. */
  async requestActivity (): Promise<ActivityHour[]> {
    return (await this.call('GET', '/requests/activity')).body as ActivityHour[]
  }

  /** `GET /audit`: the last management actions, newest first. */
  async audit (query: { limit?: string }): Promise<AuditEntry[]> {
    return (await this.call('GET', `/audit${queryString(query)}`)).body as AuditEntry[]
  }

  private async call (method: string, path: string, body?: unknown): Promise<{ status: number, body: unknown, headers: Headers }> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.adminToken !== null) headers.authorization = `Bearer ${this.adminToken}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let response: Response
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        redirect: 'error'
      })
    } catch (err) {
      const cause = (err as { cause?: { code?: string, message?: string } }).cause
      throw new UserError(`cannot reach the codex-eq server at ${this.base} (${cause?.code ?? cause?.message ?? (err as Error).message}); is it running, and is the URL right?`)
    }
    const text = await response.text()
    let parsed: unknown = null
    try {
      parsed = text === '' ? null : JSON.parse(text)
    } catch {
      throw new UserError(`${this.base} answered ${method} ${path} with HTTP ${response.status} and no JSON; is it a codex-eq server?`)
    }
    if (response.status === 401) {
      throw new UserError(this.adminToken === null
        ? `the server at ${this.base} needs its admin token: pass --admin-token or set CODEX_EQ_ADMIN_TOKEN`
        : `the server at ${this.base} refused the admin token (wrong token)`)
    }
    if (response.status >= 400) {
      const message = (parsed as { error?: { message?: unknown } } | null)?.error?.message
      throw new UserError(`the server refused ${method} ${path}: ${typeof message === 'string' ? message : `HTTP ${response.status}`}`)
    }
    return { status: response.status, body: parsed, headers: response.headers }
  }
}

/** `?a=1&b=2` of the parameters that are set; nothing when none is. */
function queryString (query: Record<string, string | undefined>): string {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, value)
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}
