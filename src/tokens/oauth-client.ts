import { createHash, randomBytes } from 'node:crypto'
import { readRefreshAnswer, type RefreshedTokens } from './token-answer.js'

/** The Codex CLI's public OAuth client: the issuer only lets this client use the Codex scopes. */
export const CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann'
const SCOPE = 'openid profile email offline_access'
const REQUEST_TIMEOUT_MS = 30_000

export interface LoginTokens {
  idToken: string
  accessToken: string
  refreshToken: string
}

export interface Pkce {
  verifier: string
  challenge: string
}

/** Refresh codes after which the refresh token is dead for good (protocol: they rotate and are single use). */
const PERMANENT_REFRESH_CODES = new Set(['refresh_token_reused', 'refresh_token_expired', 'refresh_token_invalidated', 'invalid_grant'])

export class OAuthError extends Error {
  constructor (message: string, readonly status: number | null, readonly code: string | null) {
    super(message)
    this.name = 'OAuthError'
  }
}

/** A failed refresh. `permanent` means the refresh token is dead and the account needs a new login. */
export class RefreshError extends OAuthError {
  readonly permanent: boolean
  constructor (message: string, status: number | null, code: string | null) {
    super(message, status, code)
    this.name = 'RefreshError'
    // A 401 is the issuer's verdict only when it says so in its own JSON error; a bare 401 page
    // (a CDN or proxy in between) says nothing about the token and is passing trouble.
    this.permanent = code !== null && (PERMANENT_REFRESH_CODES.has(code) || status === 401)
  }
}

export function createPkce (): Pkce {
  const verifier = randomBytes(64).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

export function createState (): string {
  return randomBytes(32).toString('base64url')
}

/** Talks to the OpenAI issuer: authorize URLs, code exchange, refresh and device-code login. */
/** The `fetch` to use for an account's egress proxy (the global one for null). */
export type FetchVia = (proxy: string | null) => typeof fetch

export class OAuthClient {
  /** `timeoutMs`: how long one call to the issuer may take before it counts as failed. */
  constructor (readonly issuer: string, private readonly fetchVia: FetchVia = () => fetch, private readonly timeoutMs = REQUEST_TIMEOUT_MS) {}

  authorizeUrl (o: { redirectUri: string, challenge: string, state: string }): string {
    const url = new URL('/oauth/authorize', this.issuer)
    const params: Record<string, string> = {
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: o.redirectUri,
      scope: SCOPE,
      code_challenge: o.challenge,
      code_challenge_method: 'S256',
      id_token_add_organizations: 'true',
      codex_cli_simplified_flow: 'true',
      state: o.state,
      originator: 'codex_cli_rs'
    }
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value)
    return url.href
  }

  async exchangeCode (o: { code: string, redirectUri: string, verifier: string }): Promise<LoginTokens> {
    const form = new URLSearchParams({ grant_type: 'authorization_code', code: o.code, redirect_uri: o.redirectUri, client_id: CLIENT_ID, code_verifier: o.verifier })
    const { status, body } = await this.post('/oauth/token', form.toString(), 'application/x-www-form-urlencoded')
    if (status !== 200) throw new OAuthError(`the issuer refused the login code (HTTP ${status}${describeError(body)})`, status, errorCode(body))
    const tokens = (body ?? {}) as { id_token?: unknown, access_token?: unknown, refresh_token?: unknown }
    if (typeof tokens.id_token !== 'string' || typeof tokens.access_token !== 'string' || typeof tokens.refresh_token !== 'string') {
      throw new OAuthError('the issuer answered the code exchange without the three tokens', status, null)
    }
    return { idToken: tokens.id_token, accessToken: tokens.access_token, refreshToken: tokens.refresh_token }
  }

  /**
   * Spends `refreshToken` (through the account's egress proxy when it has one). Anything but a 200
   * whose tokens check out is a RefreshError: a malformed 200 is a failed refresh that changes
   * nothing (the caller keeps what it had).
   */
  async refresh (refreshToken: string, proxy: string | null = null): Promise<RefreshedTokens> {
    let answer: { status: number, body: unknown }
    try {
      answer = await this.post('/oauth/token', JSON.stringify({ client_id: CLIENT_ID, grant_type: 'refresh_token', refresh_token: refreshToken }), 'application/json', proxy)
    } catch (err) {
      throw new RefreshError(`the issuer could not be reached (${(err as Error).message})`, null, null)
    }
    const { status, body } = answer
    if (status !== 200) throw new RefreshError(`token refresh refused (HTTP ${status}${describeError(body)})`, status, errorCode(body))
    const tokens = readRefreshAnswer(body)
    if (typeof tokens === 'string') throw new RefreshError(`the issuer's refresh answer is unusable (${tokens})`, status, null)
    return tokens
  }

  deviceVerificationUrl (): string {
    return new URL('/codex/device', this.issuer).href
  }

  async startDeviceLogin (): Promise<{ deviceAuthId: string, userCode: string, intervalMs: number }> {
    const { status, body } = await this.post('/api/accounts/deviceauth/usercode', JSON.stringify({ client_id: CLIENT_ID }), 'application/json')
    const answer = (body ?? {}) as { device_auth_id?: unknown, user_code?: unknown, interval?: unknown }
    if (status !== 200 || typeof answer.device_auth_id !== 'string' || typeof answer.user_code !== 'string') {
      throw new OAuthError(`the issuer did not start a device login (HTTP ${status}${describeError(body)})`, status, errorCode(body))
    }
    const seconds = Number(answer.interval)
    return { deviceAuthId: answer.device_auth_id, userCode: answer.user_code, intervalMs: Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 5000 }
  }

  /**
   * One poll of a device login: null while the user has not confirmed yet. Throws an OAuthError when
   * the issuer refused the login, any other error when it could not be asked this time.
   */
  async pollDeviceLogin (deviceAuthId: string, userCode: string): Promise<{ code: string, verifier: string } | null> {
    const { status, body } = await this.post('/api/accounts/deviceauth/token', JSON.stringify({ device_auth_id: deviceAuthId, user_code: userCode }), 'application/json')
    if (status === 403 || status === 404) return null
    // The issuer failing for a moment says nothing about the login: the caller polls again.
    if (status >= 500) throw new Error(`the issuer answered HTTP ${status}`)
    const answer = (body ?? {}) as { authorization_code?: unknown, code_verifier?: unknown }
    if (status !== 200 || typeof answer.authorization_code !== 'string' || typeof answer.code_verifier !== 'string') {
      throw new OAuthError(`the device login failed (HTTP ${status}${describeError(body)})`, status, errorCode(body))
    }
    return { code: answer.authorization_code, verifier: answer.code_verifier }
  }

  deviceRedirectUri (): string {
    return new URL('/deviceauth/callback', this.issuer).href
  }

  private async post (path: string, body: string, contentType: string, proxy: string | null = null): Promise<{ status: number, body: unknown }> {
    const response = await this.fetchVia(proxy)(new URL(path, this.issuer), {
      method: 'POST',
      headers: { 'content-type': contentType, accept: 'application/json' },
      body,
      signal: AbortSignal.timeout(this.timeoutMs)
    })
    const text = await response.text()
    let parsed: unknown = null
    try {
      parsed = text === '' ? null : JSON.parse(text)
    } catch {
      parsed = null
    }
    return { status: response.status, body: parsed }
  }
}

/** The error code of an issuer answer: `{"error":{"code":…}}`, `{"error":"…"}` or `{"code":…}`. */
function errorCode (body: unknown): string | null {
  if (body === null || typeof body !== 'object') return null
  const record = body as Record<string, unknown>
  const error = record.error
  if (typeof error === 'string') return error
  if (error !== null && typeof error === 'object') {
    const code = (error as Record<string, unknown>).code
    if (typeof code === 'string') return code
  }
  return typeof record.code === 'string' ? record.code : null
}

function describeError (body: unknown): string {
  const code = errorCode(body)
  return code === null ? '' : `: ${code}`
}
