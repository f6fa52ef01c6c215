import type { ImportOutcome } from '../account-pool.js'
import type { AccountView } from '../account-view.js'
import { UserError } from './user-error.js'

const REQUEST_TIMEOUT_MS = 60_000

/** Reads `--server`: an http(s) URL, possibly with a path prefix (behind a reverse proxy). */
export function parseServerUrl (text: string): string {
  let url: URL
  try {
    url = new URL(text.trim())
  } catch {
    throw new UserError(`--server "${text}" is not a URL; give the address of the codex-eq server, like http://my-server:1456`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UserError(`--server "${text}" must be an http:// or https:// URL`)
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

  async refreshAccount (id: string): Promise<AccountView> {
    return (await this.call('POST', `/accounts/${encodeURIComponent(id)}/refresh`)).body as AccountView
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
