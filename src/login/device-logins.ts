import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { OAuthError, type LoginTokens, type OAuthClient } from '../tokens/oauth-client.js'
import { exchangeFailure } from './browser-logins.js'
import { LoginError, STOPPED_MESSAGE, asLoginError } from './login-error.js'
import { LoginRecords, type LoginState } from './login-records.js'

/** The issuer keeps a device code valid this long. */
export const DEVICE_LOGIN_TTL_MS = 15 * 60_000
/** Never poll faster than this, whatever interval the issuer suggests. */
const MIN_POLL_MS = 250

export interface DeviceLoginsOptions<R> {
  oauth: Pick<OAuthClient, 'startDeviceLogin' | 'pollDeviceLogin' | 'exchangeCode' | 'deviceRedirectUri' | 'deviceVerificationUrl'>
  store: (tokens: LoginTokens) => Promise<R>
  now?: () => number
  onSettled?: (id: string, state: LoginState<R>) => void
}

export interface StartedDeviceLogin {
  id: string
  userCode: string
  verificationUrl: string
  intervalMs: number
  expiresAt: number
}

/**
 * Device-code logins, for machines no browser redirect can reach: the user types a short code at
 * the issuer on any device while this polls the issuer in the background, then stores the tokens.
 */
export class DeviceLogins<R> {
  readonly records: LoginRecords<R>
  private readonly stopping = new AbortController()
  private readonly now: () => number

  constructor (private readonly o: DeviceLoginsOptions<R>) {
    this.now = o.now ?? Date.now
    this.records = new LoginRecords(this.now, o.onSettled)
  }

  async start (): Promise<StartedDeviceLogin> {
    let device: Awaited<ReturnType<OAuthClient['startDeviceLogin']>>
    try {
      device = await this.o.oauth.startDeviceLogin()
    } catch (err) {
      throw new LoginError('issuer_unavailable', err instanceof OAuthError ? err.message : `the issuer could not be reached (${(err as Error).message})`)
    }
    const id = randomBytes(12).toString('base64url')
    const expiresAt = this.now() + DEVICE_LOGIN_TTL_MS
    const intervalMs = Math.max(MIN_POLL_MS, device.intervalMs)
    this.records.add(id, expiresAt)
    this.poll(id, device.deviceAuthId, device.userCode, intervalMs, expiresAt).then(
      (result) => { this.records.complete(id, result) },
      (err: unknown) => { this.records.fail(id, this.stopping.signal.aborted ? new LoginError('cancelled', STOPPED_MESSAGE) : asLoginError(err)) }
    )
    return { id, userCode: device.userCode, verificationUrl: this.o.oauth.deviceVerificationUrl(), intervalMs, expiresAt }
  }

  status (id: string): LoginState<R> | undefined {
    return this.records.get(id)
  }

  /** Stops every poll; their logins end as failed. */
  close (): void {
    this.stopping.abort()
  }

  private async poll (id: string, deviceAuthId: string, userCode: string, intervalMs: number, expiresAt: number): Promise<R> {
    const signal = this.stopping.signal
    for (;;) {
      await sleep(intervalMs, undefined, { signal })
      if (this.now() >= expiresAt) throw new LoginError('login_expired', 'the code was not entered within 15 minutes; start a new device login')
      let approved: { code: string, verifier: string } | null
      try {
        approved = await this.o.oauth.pollDeviceLogin(deviceAuthId, userCode)
      } catch (err) {
        if (err instanceof OAuthError) throw new LoginError('authorization_failed', `${err.message}; start a new device login`)
        continue // the issuer could not be reached or failed this time: keep trying until the code expires
      }
      if (approved === null) continue
      let tokens: LoginTokens
      try {
        tokens = await this.o.oauth.exchangeCode({ code: approved.code, redirectUri: this.o.oauth.deviceRedirectUri(), verifier: approved.verifier })
      } catch (err) {
        throw exchangeFailure(err)
      }
      if (this.records.get(id)?.status !== 'pending') throw new LoginError('login_expired', 'the device login ended before it was approved')
      return await this.o.store(tokens)
    }
  }
}
