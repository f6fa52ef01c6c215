/** Why a login did not end with an account. Each kind has the HTTP status the API answers with. */
export type LoginFailure =
  | 'invalid_url'
  | 'unknown_state'
  | 'login_expired'
  | 'access_denied'
  | 'authorization_failed'
  | 'code_refused'
  | 'issuer_unavailable'
  | 'import_failed'
  | 'cancelled'
  | 'port_busy'

const STATUS: Record<LoginFailure, number> = {
  invalid_url: 400,
  unknown_state: 400,
  login_expired: 410,
  access_denied: 403,
  authorization_failed: 400,
  code_refused: 400,
  issuer_unavailable: 502,
  import_failed: 502,
  cancelled: 409,
  port_busy: 409
}

/** A login that failed for a reason the user can act on. Messages never hold codes, states or tokens. */
export class LoginError extends Error {
  readonly statusCode: number
  constructor (readonly kind: LoginFailure, message: string) {
    super(message)
    this.name = 'LoginError'
    this.statusCode = STATUS[kind]
  }
}

/** Any failure while storing a finished login's tokens, as a LoginError. */
export function asLoginError (err: unknown): LoginError {
  return err instanceof LoginError ? err : new LoginError('import_failed', `the account could not be stored: ${(err as Error).message}`)
}

export const STOPPED_MESSAGE = 'the service stopped before the sign-in finished'
