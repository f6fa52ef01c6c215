import { randomUUID } from 'node:crypto'
import { AUTH_CLAIM, PROFILE_CLAIM, makeJwt, randomHex, randomId } from './jwt.js'

/** The Codex CLI's public OAuth client, the only one the fake issuer accepts. */
export const CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann'

export interface TokenSet {
  id_token: string
  access_token: string
  refresh_token: string
  /** Not part of an issuer answer; here for convenience (it is what auth.json stores as `account_id`). */
  account_id: string
}

/** A ChatGPT user of the fake. Fields may be changed; tokens minted later carry the new values. */
export interface FakeAccount {
  accountId: string
  email: string
  plan: string
  userId: string
  /** The most recently minted token set of this account. */
  tokens: TokenSet
}

export interface NewAccount {
  email?: string
  plan?: string
  accountId?: string
}

interface AccessTokenInfo { accountId: string, exp: number, revoked: boolean }
interface RefreshTokenInfo { accountId: string, used: boolean }

/** Accounts and every token issued: what the issuer mints and the backend checks. */
export class FakeState {
  readonly accounts: FakeAccount[] = []
  readonly accessTokens = new Map<string, AccessTokenInfo>()
  readonly refreshTokens = new Map<string, RefreshTokenInfo>()
  readonly secrets: string[] = []
  issuerUrl = ''
  accessTokenTtlSec: number
  private counter = 0

  constructor (readonly now: () => number, accessTokenTtlSec: number) {
    this.accessTokenTtlSec = accessTokenTtlSec
  }

  nowSec (): number {
    return Math.floor(this.now() / 1000)
  }

  find (accountId: string): FakeAccount | undefined {
    return this.accounts.find((a) => a.accountId === accountId)
  }

  account (accountId: string): FakeAccount {
    const account = this.find(accountId)
    if (account === undefined) throw new Error(`fake: unknown account ${accountId}`)
    return account
  }

  addAccount (o: NewAccount = {}): FakeAccount {
    const accountId = o.accountId ?? randomUUID()
    if (this.find(accountId) !== undefined) throw new Error(`fake: account ${accountId} exists already`)
    this.counter += 1
    const account: FakeAccount = {
      accountId,
      email: o.email ?? `user${this.counter}-${randomHex(3)}@example.com`,
      plan: o.plan ?? 'plus',
      userId: `user-${randomId(12)}`,
      tokens: { id_token: '', access_token: '', refresh_token: '', account_id: accountId }
    }
    this.accounts.push(account)
    this.mintTokens(accountId)
    return account
  }

  /** A fresh, independent token set (like a new login). Older refresh tokens stay valid until used. */
  mintTokens (accountId: string): TokenSet {
    const account = this.account(accountId)
    const iat = this.nowSec()
    const auth = {
      chatgpt_account_id: account.accountId,
      chatgpt_plan_type: account.plan,
      chatgpt_user_id: account.userId,
      user_id: account.userId
    }
    const idToken = makeJwt({
      iss: this.issuerUrl,
      aud: [CLIENT_ID],
      sub: `auth0|${account.userId}`,
      email: account.email,
      email_verified: true,
      iat,
      auth_time: iat,
      exp: iat + 3600,
      jti: randomUUID(),
      [AUTH_CLAIM]: { ...auth, organizations: [{ id: `org-${account.accountId}`, is_default: true, role: 'owner', title: 'Personal' }] }
    })
    const exp = iat + this.accessTokenTtlSec
    const accessToken = makeJwt({
      iss: this.issuerUrl,
      aud: ['https://api.openai.com/v1'],
      sub: `auth0|${account.userId}`,
      client_id: CLIENT_ID,
      scp: ['openid', 'profile', 'email', 'offline_access'],
      iat,
      nbf: iat,
      exp,
      jti: randomUUID(),
      [AUTH_CLAIM]: auth,
      [PROFILE_CLAIM]: { email: account.email, email_verified: true }
    })
    const refreshToken = `rt_${randomId(32)}`
    this.accessTokens.set(accessToken, { accountId, exp, revoked: false })
    this.refreshTokens.set(refreshToken, { accountId, used: false })
    this.secrets.push(idToken, accessToken, refreshToken)
    account.tokens = { id_token: idToken, access_token: accessToken, refresh_token: refreshToken, account_id: accountId }
    return account.tokens
  }

  revokeAccessTokens (accountId: string): void {
    for (const info of this.accessTokens.values()) if (info.accountId === accountId) info.revoked = true
  }
}
