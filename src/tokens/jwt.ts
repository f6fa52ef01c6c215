/**
 * Reads JWT claims. Tokens are never verified here: the issuer and the backend verify them,
 * we only need the payload to know whose token it is and when it dies.
 */
export type Claims = Record<string, unknown>

export function decodeJwtPayload (token: string): Claims | null {
  const parts = token.split('.')
  if (parts.length !== 3 || parts[1] === '') return null
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'))
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? payload as Claims : null
  } catch {
    return null
  }
}

const AUTH_CLAIM = 'https://api.openai.com/auth'
const PROFILE_CLAIM = 'https://api.openai.com/profile'

export interface Identity {
  email: string | null
  accountId: string | null
  userId: string | null
  plan: string | null
}

function asObject (value: unknown): Claims {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Claims : {}
}

function asString (value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null
}

/** Who a token set belongs to, from the id_token (falling back to the access token's auth claim). */
export function readIdentity (idClaims: Claims | null, accessClaims: Claims | null): Identity {
  const id = idClaims ?? {}
  const idAuth = asObject(id[AUTH_CLAIM])
  const accessAuth = asObject(accessClaims?.[AUTH_CLAIM])
  return {
    email: asString(id.email) ?? asString(asObject(id[PROFILE_CLAIM]).email) ?? asString(asObject(accessClaims?.[PROFILE_CLAIM]).email),
    accountId: asString(idAuth.chatgpt_account_id) ?? asString(accessAuth.chatgpt_account_id),
    userId: asString(idAuth.chatgpt_user_id) ?? asString(idAuth.user_id) ?? asString(accessAuth.chatgpt_user_id) ?? asString(id.sub),
    plan: asString(idAuth.chatgpt_plan_type) ?? asString(accessAuth.chatgpt_plan_type)
  }
}

/** The `exp` claim in milliseconds, or null when the token carries none. */
export function expiresAtMs (claims: Claims | null): number | null {
  const exp = claims?.exp
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null
}
