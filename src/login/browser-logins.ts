import { randomBytes } from 'node:crypto'
import { OAuthError, createPkce, createState, type LoginTokens, type OAuthClient } from '../tokens/oauth-client.js'
import { CallbackListener, type Page, type ServeCallbacks } from './callback-listener.js'
import { cancelledPage, failurePage, successPage } from './callback-pages.js'
import { LoginError, STOPPED_MESSAGE, asLoginError } from './login-error.js'
import { LoginRecords, type LoginState } from './login-records.js'
import { parseRedirectUrl } from './redirect-url.js'

/** How long a started browser login may take (and so the longest the callback port stays open). */
export const BROWSER_LOGIN_TTL_MS = 10 * 60_000

export interface BrowserLoginsOptions<R> {
  oauth: Pick<OAuthClient, 'authorizeUrl' | 'exchangeCode'>
  callbackPort: number
  serve: ServeCallbacks
  /** Keeps the tokens of a finished login (adds or updates the account); its answer is the login's result. */
  store: (tokens: LoginTokens) => Promise<R>
  /** Names the account on the success page. */
  describe: (result: R) => string
  /** Where the success page leads back to (the dashboard), if anywhere. */
  backUrl?: () => string | null
  now?: () => number
  onSettled?: (id: string, state: LoginState<R>) => void
}

export interface StartedLogin {
  id: string
  authorizeUrl: string
  expiresAt: number
}

interface PendingLogin {
  id: string
  verifier: string
  redirectUri: string
  expiresAt: number
  timer: NodeJS.Timeout
}

/**
 * Browser (PKCE) logins: each start gets a state and a verifier, held for 10 minutes; the issuer's
 * redirect (to the callback listener, or pasted by the user) is checked against them before the code
 * is exchanged and the tokens stored.
 */
export class BrowserLogins<R> {
  readonly records: LoginRecords<R>
  private readonly pending = new Map<string, PendingLogin>()
  private readonly listener: CallbackListener
  private readonly now: () => number

  constructor (private readonly o: BrowserLoginsOptions<R>) {
    this.now = o.now ?? Date.now
    this.records = new LoginRecords(this.now, o.onSettled)
    this.listener = new CallbackListener({
      port: o.callbackPort,
      serve: o.serve,
      routes: {
        callback: async (query) => await this.answerCallback(query),
        cancel: async () => {
          this.cancelAll('the sign-in was cancelled (GET /cancel on the callback port)')
          return cancelledPage()
        }
      }
    })
  }

  /** Opens the callback listener (if needed) and makes the issuer's authorize URL for a new login. */
  async start (): Promise<StartedLogin> {
    const port = await this.listener.hold()
    const redirectUri = `http://localhost:${port}/auth/callback`
    const { verifier, challenge } = createPkce()
    const state = createState()
    const id = randomBytes(12).toString('base64url')
    const expiresAt = this.now() + BROWSER_LOGIN_TTL_MS
    const timer = setTimeout(() => { this.expire(state) }, BROWSER_LOGIN_TTL_MS)
    timer.unref()
    this.pending.set(state, { id, verifier, redirectUri, expiresAt, timer })
    this.records.add(id, expiresAt)
    return { id, authorizeUrl: this.o.oauth.authorizeUrl({ redirectUri, challenge, state }), expiresAt }
  }

  status (id: string): LoginState<R> | undefined {
    return this.records.get(id)
  }

  /**
   * Finishes a login from the issuer's redirect query. The state is checked first: an unknown one
   * changes nothing. After that the login is used up, whatever happens next.
   */
  async complete (query: URLSearchParams): Promise<R> {
    const state = query.get('state') ?? ''
    const login = this.pending.get(state)
    if (login === undefined) {
      throw new LoginError('unknown_state', 'this sign-in is unknown or already finished (its state matches no pending login); start a new login')
    }
    this.pending.delete(state)
    clearTimeout(login.timer)
    try {
      const result = await this.finish(login, query)
      this.records.complete(login.id, result)
      return result
    } catch (err) {
      const failure = asLoginError(err)
      this.records.fail(login.id, failure)
      throw failure
    } finally {
      this.listener.release()
    }
  }

  /** Finishes a login from the address the browser ended on, pasted by the user. */
  async completeFromUrl (text: string): Promise<R> {
    return await this.complete(parseRedirectUrl(text))
  }

  /** Ends every pending login (the callback port is wanted by another login, or the process stops). */
  cancelAll (reason: string): void {
    for (const [state, login] of this.pending) {
      this.pending.delete(state)
      clearTimeout(login.timer)
      this.records.fail(login.id, new LoginError('cancelled', reason))
      this.listener.release()
    }
  }

  async close (): Promise<void> {
    this.cancelAll(STOPPED_MESSAGE)
    await this.listener.close()
  }

  private async finish (login: PendingLogin, query: URLSearchParams): Promise<R> {
    if (login.expiresAt <= this.now()) throw new LoginError('login_expired', 'the sign-in took more than 10 minutes and expired; start a new login')
    const error = query.get('error')
    if (error !== null) {
      const description = query.get('error_description')
      const detail = description === null ? error : `${error}: ${description}`
      if (error === 'access_denied') throw new LoginError('access_denied', `the sign-in was refused at the issuer (${detail}); nothing was added`)
      throw new LoginError('authorization_failed', `the issuer reported an error (${detail}); nothing was added`)
    }
    const code = query.get('code')
    if (code === null || code === '') throw new LoginError('invalid_url', 'the redirect carries no code; start a new login')
    let tokens: LoginTokens
    try {
      tokens = await this.o.oauth.exchangeCode({ code, redirectUri: login.redirectUri, verifier: login.verifier })
    } catch (err) {
      throw exchangeFailure(err)
    }
    return await this.o.store(tokens)
  }

  private async answerCallback (query: URLSearchParams): Promise<Page> {
    const backUrl = this.o.backUrl?.() ?? null
    try {
      return successPage(this.o.describe(await this.complete(query)), backUrl)
    } catch (err) {
      if (!(err instanceof LoginError)) throw err
      return failurePage(err.statusCode, err.message, backUrl)
    }
  }

  private expire (state: string): void {
    const login = this.pending.get(state)
    if (login === undefined) return
    this.pending.delete(state)
    this.records.fail(login.id, new LoginError('login_expired', 'the sign-in was not finished within 10 minutes; start a new login'))
    this.listener.release()
  }
}

/** The issuer refused the code (a 4xx: used, expired, wrong verifier) or could not be asked. */
export function exchangeFailure (err: unknown): LoginError {
  if (err instanceof OAuthError && err.status !== null && err.status < 500) return new LoginError('code_refused', `${err.message}; start a new login`)
  const reason = err instanceof OAuthError ? err.message : `the issuer could not be reached (${(err as Error).message})`
  return new LoginError('issuer_unavailable', reason)
}
