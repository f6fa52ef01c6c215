import type { IncomingMessage, ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import { readBody, sendHtml, sendJson, sleep } from './http.js'
import { pkceChallenge, randomId } from './jwt.js'
import { CLIENT_ID, type FakeState, type TokenSet } from './state.js'

/**
 * Scripted refresh failures. Issuer verdicts (`expired`, `invalidated`, `server_error`) and `down`
 * leave the refresh token unspent, as does `bare_401` (an HTML page from something in front of the
 * issuer). `lost` spends it and then cuts the connection (the answer never arrives); `hang` spends
 * it and never answers.
 */
export type RefreshFailure = 'expired' | 'invalidated' | 'server_error' | 'down' | 'bare_401' | 'lost' | 'hang'

/** Who logs in next, and whether they consent. Shared with the FakeOpenAI object. */
export interface LoginSettings {
  nextLogin: string | null
  consent: 'approve' | 'deny'
}

export interface FakeIssuer {
  /** Every `grant_type=refresh_token` request, failed ones included. */
  refreshCalls: number
  /** Every `grant_type=authorization_code` request, failed ones included. */
  tokenExchanges: number
  /** Delay before any refresh answer (the refresh token is consumed on arrival, before the delay). */
  delayRefreshMs: number
  /** The `interval` string the device-code start answers with. */
  deviceInterval: string
  /** How many of the next device-login polls are answered 500 (the issuer failing for a moment). */
  failDevicePolls: number
  /** Lifetime of access tokens minted from now on. */
  accessTokenTtlSec: number
  /** The query of every /oauth/authorize request, in order. */
  authorizeRequests: Array<Record<string, string>>
  /** Persistent until called again with null. See RefreshFailure for which failures spend the token. */
  failRefresh (accountId: string, kind: RefreshFailure | null): void
  /**
   * Answers this account's refreshes with HTTP 200 and exactly `body` (say `{}` or `{"id_token":42}`),
   * without spending the token, until called again with null.
   */
  malformRefresh (accountId: string, body: string | null): void
  /** Approves a pending device login (as the user typing the code at /codex/device); returns the account id. */
  approveDevice (userCode: string, accountId?: string): string
}

const CODE_TTL_MS = 10 * 60 * 1000
const DEVICE_TTL_MS = 15 * 60 * 1000
const TOKEN_SCOPE = 'openid profile email offline_access'

interface AuthCode { challenge: string, redirectUri: string, accountId: string, expiresAt: number, used: boolean }
interface DeviceLogin {
  deviceAuthId: string
  userCode: string
  expiresAt: number
  approved: { authorization_code: string, code_challenge: string, code_verifier: string } | null
}

export function createIssuer (state: FakeState, signal: AbortSignal, login: LoginSettings): {
  issuer: FakeIssuer
  handle: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>
} {
  const codes = new Map<string, AuthCode>()
  const devices = new Map<string, DeviceLogin>()
  const failures = new Map<string, RefreshFailure>()
  const malformed = new Map<string, string>()

  function loginAccount (explicit?: string): string {
    const accountId = explicit ?? login.nextLogin
    if (accountId === null) return state.addAccount().accountId
    if (state.find(accountId) === undefined) state.addAccount({ accountId })
    return accountId
  }

  function issueCode (accountId: string, challenge: string, redirectUri: string): string {
    const code = `ac_${randomId(32)}`
    codes.set(code, { challenge, redirectUri, accountId, expiresAt: state.now() + CODE_TTL_MS, used: false })
    return code
  }

  function tokenAnswer (tokens: TokenSet): Record<string, unknown> {
    return {
      id_token: tokens.id_token,
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_in: state.accessTokenTtlSec,
      token_type: 'Bearer',
      scope: TOKEN_SCOPE
    }
  }

  function approveDevice (userCode: string, accountId?: string): string {
    const wanted = userCode.trim().toUpperCase()
    const device = [...devices.values()].find((d) => d.userCode === wanted)
    if (device === undefined || device.expiresAt <= state.now()) throw new Error(`fake: no pending device login with code ${userCode}`)
    const account = loginAccount(accountId)
    const verifier = randomBytes(64).toString('base64url')
    const challenge = pkceChallenge(verifier)
    device.approved = {
      authorization_code: issueCode(account, challenge, `${state.issuerUrl}/deviceauth/callback`),
      code_challenge: challenge,
      code_verifier: verifier
    }
    return account
  }

  const issuer: FakeIssuer = {
    refreshCalls: 0,
    tokenExchanges: 0,
    delayRefreshMs: 0,
    deviceInterval: '1',
    failDevicePolls: 0,
    get accessTokenTtlSec () { return state.accessTokenTtlSec },
    set accessTokenTtlSec (value: number) { state.accessTokenTtlSec = value },
    authorizeRequests: [],
    failRefresh (accountId, kind) {
      if (kind === null) failures.delete(accountId)
      else failures.set(accountId, kind)
    },
    malformRefresh (accountId, body) {
      if (body === null) malformed.delete(accountId)
      else malformed.set(accountId, body)
    },
    approveDevice
  }

  function redirectAllowed (uri: string): boolean {
    if (uri === `${state.issuerUrl}/deviceauth/callback`) return true
    let url: URL
    try {
      url = new URL(uri)
    } catch {
      return false
    }
    // The real allow-list holds http://localhost:1455|1457/auth/callback; the port is free here so tests can run in parallel.
    return url.protocol === 'http:' && url.hostname === 'localhost' && url.pathname === '/auth/callback' && url.search === ''
  }

  function authorize (res: ServerResponse, url: URL): void {
    const q = Object.fromEntries(url.searchParams)
    issuer.authorizeRequests.push(q)
    const required = ['response_type', 'client_id', 'redirect_uri', 'scope', 'code_challenge', 'code_challenge_method', 'state']
    const missing = required.filter((key) => (q[key] ?? '') === '')
    const problem = missing.length > 0
      ? `missing ${missing.join(', ')}`
      : q.client_id !== CLIENT_ID
        ? 'unknown client_id'
        : q.response_type !== 'code'
          ? 'response_type must be code'
          : q.code_challenge_method !== 'S256'
            ? 'code_challenge_method must be S256'
            : !/^[A-Za-z0-9_-]{43}$/.test(q.code_challenge!)
                ? 'code_challenge must be a base64url SHA-256 without padding'
                : !q.scope!.split(' ').includes('openid') || !q.scope!.split(' ').includes('offline_access')
                    ? 'scope must include openid and offline_access'
                    : !redirectAllowed(q.redirect_uri!)
                        ? 'redirect_uri is not allowed'
                        : null
    if (problem !== null) {
      sendJson(res, 400, { error: 'invalid_request', error_description: problem })
      return
    }
    const target = new URL(q.redirect_uri!)
    if (login.consent === 'deny') {
      target.searchParams.set('error', 'access_denied')
      target.searchParams.set('error_description', 'The user denied the request')
    } else {
      target.searchParams.set('code', issueCode(loginAccount(), q.code_challenge!, q.redirect_uri!))
      target.searchParams.set('scope', q.scope!)
    }
    target.searchParams.set('state', q.state!)
    res.writeHead(302, { location: target.href, 'content-length': 0 })
    res.end()
  }

  function exchangeCode (res: ServerResponse, p: Record<string, unknown>): void {
    issuer.tokenExchanges += 1
    const missing = ['code', 'redirect_uri', 'client_id', 'code_verifier'].filter((key) => typeof p[key] !== 'string' || p[key] === '')
    if (missing.length > 0) return sendJson(res, 400, { error: 'invalid_request', error_description: `missing ${missing.join(', ')}` })
    if (p.client_id !== CLIENT_ID) return sendJson(res, 400, { error: 'invalid_client', error_description: 'unknown client_id' })
    const entry = codes.get(p.code as string)
    const invalid = (why: string): void => sendJson(res, 400, { error: 'invalid_grant', error_description: why })
    if (entry === undefined) return invalid('unknown authorization code')
    if (entry.used) return invalid('authorization code already used')
    if (entry.expiresAt <= state.now()) return invalid('authorization code expired')
    if (entry.redirectUri !== p.redirect_uri) return invalid('redirect_uri does not match the authorization request')
    const verifier = p.code_verifier as string
    if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) || pkceChallenge(verifier) !== entry.challenge) return invalid('PKCE verification failed')
    entry.used = true
    sendJson(res, 200, tokenAnswer(state.mintTokens(entry.accountId)))
  }

  async function refresh (req: IncomingMessage, res: ServerResponse, p: Record<string, unknown>): Promise<void> {
    issuer.refreshCalls += 1
    const answer = refreshOutcome(p)
    await sleep(issuer.delayRefreshMs, signal)
    if (answer === 'down' || answer === 'lost') {
      req.socket.destroy()
      return
    }
    if (answer === 'hang') {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      return
    }
    if (typeof answer.body === 'string') {
      res.writeHead(answer.status, { 'content-type': answer.status === 200 ? 'application/json' : 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(answer.body) })
      res.end(answer.body)
      return
    }
    sendJson(res, answer.status, answer.body)
  }

  /** Decided (and the refresh token consumed) on arrival, so concurrent uses of one token race like the real thing. */
  function refreshOutcome (p: Record<string, unknown>): 'down' | 'lost' | 'hang' | { status: number, body: unknown } {
    const refused = (code: string, message: string): { status: number, body: unknown } =>
      ({ status: 401, body: { error: { message, type: 'invalid_request_error', param: null, code }, error_description: message } })
    if (p.client_id !== CLIENT_ID) return { status: 401, body: { error: 'invalid_client', error_description: 'unknown client_id' } }
    if (typeof p.refresh_token !== 'string' || p.refresh_token === '') return { status: 400, body: { error: 'invalid_request', error_description: 'missing refresh_token' } }
    const info = state.refreshTokens.get(p.refresh_token)
    if (info === undefined) return refused('refresh_token_invalidated', 'Your refresh token has been invalidated. Please try signing in again.')
    const garbage = malformed.get(info.accountId)
    if (garbage !== undefined) return { status: 200, body: garbage }
    const failure = failures.get(info.accountId)
    switch (failure) {
      case 'expired': return refused('refresh_token_expired', 'Your refresh token has expired. Please try signing in again.')
      case 'invalidated': return refused('refresh_token_invalidated', 'Your refresh token has been invalidated. Please try signing in again.')
      case 'server_error': return { status: 500, body: { error: { message: 'Internal server error', type: 'server_error', code: null } } }
      case 'down': return 'down'
      case 'bare_401': return { status: 401, body: '<html><head><title>401 Authorization Required</title></head><body><center><h1>401 Authorization Required</h1></center></body></html>' }
      case 'lost': case 'hang': case undefined: break
    }
    if (info.used) {
      return refused('refresh_token_reused', 'Your refresh token has already been used to generate a new access token. Please try signing in again.')
    }
    info.used = true
    const minted = tokenAnswer(state.mintTokens(info.accountId))
    return failure === 'lost' || failure === 'hang' ? failure : { status: 200, body: minted }
  }

  async function token (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    const text = (await readBody(req)).toString('utf8')
    let p: Record<string, unknown>
    if (type === 'application/x-www-form-urlencoded') {
      p = Object.fromEntries(new URLSearchParams(text))
    } else if (type === 'application/json') {
      try {
        p = JSON.parse(text) as Record<string, unknown>
        if (p === null || typeof p !== 'object') throw new Error('not an object')
      } catch {
        return sendJson(res, 400, { error: 'invalid_request', error_description: 'body is not a JSON object' })
      }
    } else {
      return sendJson(res, 400, { error: 'invalid_request', error_description: `unsupported content-type ${type}` })
    }
    // Codex sends the code exchange as a form and the refresh as JSON; the fake insists on both.
    if (p.grant_type === 'authorization_code') {
      if (type !== 'application/x-www-form-urlencoded') return sendJson(res, 400, { error: 'invalid_request', error_description: 'the code exchange must be form-urlencoded' })
      return exchangeCode(res, p)
    }
    if (p.grant_type === 'refresh_token') {
      if (type !== 'application/json') return sendJson(res, 400, { error: 'invalid_request', error_description: 'the refresh must be JSON' })
      return await refresh(req, res, p)
    }
    sendJson(res, 400, { error: 'unsupported_grant_type', error_description: `grant_type ${String(p.grant_type)}` })
  }

  async function readJsonObject (req: IncomingMessage): Promise<Record<string, unknown>> {
    try {
      const value = JSON.parse((await readBody(req)).toString('utf8')) as unknown
      return value !== null && typeof value === 'object' ? value as Record<string, unknown> : {}
    } catch {
      return {}
    }
  }

  async function deviceStart (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = await readJsonObject(req)
    if (p.client_id !== CLIENT_ID) return sendJson(res, 400, { error: { code: 'invalid_client', message: 'unknown client_id' } })
    const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'
    const pick = (n: number): string => Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('')
    const device: DeviceLogin = {
      deviceAuthId: `deviceauth_${randomId(16)}`,
      userCode: `${pick(4)}-${pick(5)}`,
      expiresAt: state.now() + DEVICE_TTL_MS,
      approved: null
    }
    devices.set(device.deviceAuthId, device)
    sendJson(res, 200, { device_auth_id: device.deviceAuthId, user_code: device.userCode, interval: issuer.deviceInterval })
  }

  async function devicePoll (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = await readJsonObject(req)
    if (issuer.failDevicePolls > 0) {
      issuer.failDevicePolls--
      return sendJson(res, 500, { error: { message: 'Internal server error', type: 'server_error', code: null } })
    }
    const device = typeof p.device_auth_id === 'string' ? devices.get(p.device_auth_id) : undefined
    if (device === undefined || device.userCode !== p.user_code) {
      return sendJson(res, 404, { error: { code: 'deviceauth_not_found', message: 'Unknown device authorization' } })
    }
    if (device.approved === null || device.expiresAt <= state.now()) {
      return sendJson(res, 403, { error: { code: 'deviceauth_authorization_pending', message: 'Device authorization is pending' } })
    }
    sendJson(res, 200, device.approved)
  }

  async function devicePage (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = '<form method="post" action="/codex/device"><label>Code <input name="user_code" autofocus></label> <button type="submit">Continue</button></form>'
    if (req.method === 'GET') return sendHtml(res, 200, `<!doctype html><title>Device login</title><h1>Enter your code</h1>${form}`)
    const code = new URLSearchParams((await readBody(req)).toString('utf8')).get('user_code') ?? ''
    if (login.consent === 'deny') return sendHtml(res, 200, '<!doctype html><title>Denied</title><h1>Access denied</h1>')
    try {
      approveDevice(code)
    } catch {
      return sendHtml(res, 400, `<!doctype html><title>Device login</title><h1>Unknown or expired code</h1>${form}`)
    }
    sendHtml(res, 200, '<!doctype html><title>Approved</title><h1>Device approved</h1><p>You can return to your terminal.</p>')
  }

  async function handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const route = `${req.method ?? ''} ${url.pathname}`
    switch (route) {
      case 'GET /oauth/authorize': authorize(res, url); return true
      case 'POST /oauth/token': await token(req, res); return true
      case 'POST /api/accounts/deviceauth/usercode': await deviceStart(req, res); return true
      case 'POST /api/accounts/deviceauth/token': await devicePoll(req, res); return true
      case 'GET /codex/device': case 'POST /codex/device': await devicePage(req, res); return true
      default: return false
    }
  }

  return { issuer, handle }
}
