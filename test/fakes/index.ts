/**
 * A local fake of the OpenAI issuer (auth.openai.com) and the ChatGPT Codex backend, one HTTP server
 * on 127.0.0.1 and a free port, following docs/protocol.md.
 *
 *   const fake = await startFakeOpenAI({ accessTokenTtlSec?, now? })   // now(): ms, default Date.now
 *   fake.issuerUrl        http://127.0.0.1:PORT  (/oauth/authorize, /oauth/token, /api/accounts/deviceauth/*, /codex/device)
 *   fake.backendUrl       http://127.0.0.1:PORT/backend-api/codex  (POST /responses, POST /responses/compact, GET /models)
 *   fake.chatgptBaseUrl   http://127.0.0.1:PORT/backend-api        (GET /wham/usage)
 *   await fake.close()    also destroys open sockets (hanging and slow streams)
 *
 * Accounts: `addAccount({email?, plan?, accountId?})` creates a user already logged in (`account.tokens`
 * holds the latest token set); `mintTokens(id)` is a fresh login's token set; `accounts` lists them;
 * `allIssuedSecrets()` every id/access/refresh token ever issued. Logins (authorize or device approval)
 * log in as `nextLogin` (stays set; unknown ids are created) or else as a new account; `consent = 'deny'`
 * makes authorize redirect with `error=access_denied`.
 *
 * Issuer (`fake.issuer`): PKCE S256 codes (single use, 10 min, bound to redirect_uri; redirect_uri must be
 * `http://localhost:<any port>/auth/callback` or `{issuerUrl}/deviceauth/callback`); the code exchange must be
 * form-urlencoded, the refresh JSON. Refresh tokens rotate and are single use (reuse: 401
 * `{"error":{"code":"refresh_token_reused"}}`). `failRefresh(id, 'expired'|'invalidated'|'server_error'|'down'|'bare_401'|'lost'|'hang'|null)`, `malformRefresh(id, body|null)`,
 * `delayRefreshMs`, `refreshCalls`, `tokenExchanges`, `authorizeRequests`, `accessTokenTtlSec`,
 * `deviceInterval` (string, default "1"), `approveDevice(userCode, accountId?)`.
 *
 * Backend (`fake.backend`): bearer token must be issued, unexpired (by `now`), unrevoked and match
 * ChatGPT-Account-ID (else 401 without quota headers); /responses needs `stream: true`, `store: false`, and
 * a well-formed body (`instructions` a string, `input` items and parts of known shapes, named function
 * tools; else 400 `{"detail"}`, see `invalidRequest`). Step `tool_calls` adds function calls to the stream.
 * `script(id, ...steps)` queues one-shot behaviours (see Step), `setExhausted(id, {...} | null)` a persistent
 * 429 usage_limit_reached, `setQuotaHeaders(id, {...})` the x-codex-* quota (also /wham/usage),
 * `usage(id)`, `revokeAccessTokens(id)`, `streamOptions {eventDelayMs, deltas, agentMessage?}`, `requests` (recorded, with the bytes streamed so far).
 * A success stream carries a reasoning item whose encrypted_content is bound to the account (replaying it
 * under another account: 400 invalid_encrypted_content) and a message `served by <email>: <last user text>`.
 * Every encrypted blob of `input` is checked that way: `reasoning`, `compaction`, `compaction_summary`,
 * `context_compaction` items and `{"type":"encrypted_content"}` parts in an item's `output` / `content`
 * array; `requests[i].blobs` lists them (`{where, owner}`), accepted or not. An input ending with
 * `{"type":"compaction_trigger"}` adds a `compaction` item to the stream; /responses/compact answers
 * `{output: [message, compaction]}`; `streamOptions.agentMessage` adds an `agent_message` item.
 * Success streams carry `x-codex-turn-state: ts_<accountId>_<random>` (the request's own one when it was
 * minted for the same account; `accountOfTurnState(v)`); `requests[i].turnState` is the request's header.
 * `setOutage({status?, body?, mode?: 'status'|'reset'|'hang', forMs?, fromFirstRequest?} | null)` answers everything under
 * /backend-api/codex/ before authentication (default 502 `{"detail":"Bad Gateway"}`, no quota headers;
 * /wham/usage unaffected; counted in `outageRequests`, recorded with status 0 for reset/hang).
 * `setModelLimit(id, model, {family, limitName, resetsAt?} | null)`: that model's requests of that account get a
 * model-scoped 429 (`x-codex-active-limit: <family>`, `x-<family>-*` headers); it wins over `setExhausted`,
 * scripted steps win over both. Step `stream_failed` with `afterContent: true` fails after the reasoning item
 * and a first text delta.
 * WebSocket (protocol §5.6): `GET /backend-api/codex/responses` upgrades (authenticated as a POST, outages
 * apply; the 101 carries quota headers and a turn state); each `response.create` frame is a turn recorded in
 * `requests` with `transport: 'websocket'` and its `connection` number (`wsConnections` lists the upgrades),
 * answered with event frames or `{"type":"error","status","error","headers"}`; steps, limits and blob checks
 * apply as over HTTP; `previous_response_id` must name a response completed on the same connection (else an
 * error frame 400 `previous_response_not_found`); `generate: false` answers created + completed only.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { createBackend, type FakeBackend } from './backend.js'
import { createIssuer, type FakeIssuer, type LoginSettings } from './issuer.js'
import { FakeState, type FakeAccount, type NewAccount, type TokenSet } from './state.js'

export { CLIENT_ID } from './state.js'
export type { FakeAccount, NewAccount, TokenSet } from './state.js'
export type { FakeIssuer, RefreshFailure } from './issuer.js'
export type { ExhaustedOptions, FakeBackend, ModelLimitOptions, OutageOptions, QuotaSettings, QuotaUpdate, RecordedBlob, RecordedRequest, ResetVia, Step, WhamUsage } from './backend.js'
export type { SseEvent } from './sse.js'
export { accountOfEncryptedContent, accountOfTurnState, encryptedContentFor } from './sse.js'
export { AUTH_CLAIM, decodeJwtPayload, pkceChallenge } from './jwt.js'

export interface FakeOpenAIOptions {
  /** Lifetime of minted access tokens (default 3600); also settable later as `issuer.accessTokenTtlSec`. */
  accessTokenTtlSec?: number
  /** Clock in ms (default Date.now); drives token expiry, code expiry and quota resets. */
  now?: () => number
}

export interface FakeOpenAI {
  issuerUrl: string
  backendUrl: string
  chatgptBaseUrl: string
  close (): Promise<void>
  addAccount (o?: NewAccount): FakeAccount
  readonly accounts: FakeAccount[]
  mintTokens (accountId: string): TokenSet
  nextLogin: string | null
  consent: 'approve' | 'deny'
  allIssuedSecrets (): string[]
  readonly backend: FakeBackend
  readonly issuer: FakeIssuer
}

/** Codex's `auth.json` for a token set, as a user would import it. */
export function codexAuthJson (tokens: TokenSet, lastRefresh: Date = new Date()): Record<string, unknown> {
  return {
    auth_mode: 'chatgpt',
    OPENAI_API_KEY: null,
    tokens: { id_token: tokens.id_token, access_token: tokens.access_token, refresh_token: tokens.refresh_token, account_id: tokens.account_id },
    last_refresh: lastRefresh.toISOString()
  }
}

export async function startFakeOpenAI (opts: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const state = new FakeState(opts.now ?? Date.now, opts.accessTokenTtlSec ?? 3600)
  const closing = new AbortController()
  const login: LoginSettings = { nextLogin: null, consent: 'approve' }
  const issuer = createIssuer(state, closing.signal, login)
  const backend = createBackend(state, closing.signal)
  const sockets = new Set<Socket>()

  async function route (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake.invalid')
    if (await issuer.handle(req, res, url)) return
    if (await backend.handle(req, res, url)) return
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ detail: 'Not Found' }))
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (closing.signal.aborted || res.destroyed) return
      if (res.headersSent) {
        res.destroy()
        return
      }
      console.error('fake OpenAI: handler failed', err)
      res.writeHead(500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ detail: 'fake failed' }))
    })
  })
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    backend.upgrade(req, socket, head)
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const base = `http://127.0.0.1:${port}`
  state.issuerUrl = base

  return {
    issuerUrl: base,
    backendUrl: `${base}/backend-api/codex`,
    chatgptBaseUrl: `${base}/backend-api`,
    async close () {
      closing.abort()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      })
    },
    addAccount: (o) => state.addAccount(o),
    accounts: state.accounts,
    mintTokens: (accountId) => state.mintTokens(accountId),
    get nextLogin () { return login.nextLogin },
    set nextLogin (value: string | null) { login.nextLogin = value },
    get consent () { return login.consent },
    set consent (value: 'approve' | 'deny') { login.consent = value },
    allIssuedSecrets: () => [...state.secrets],
    backend: backend.backend,
    issuer: issuer.issuer
  }
}
