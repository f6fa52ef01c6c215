import { decodeJwtPayload } from './jwt.js'

/** A refresh answer after validation: the access token always, the others when the issuer rotated them. */
export interface RefreshedTokens {
  accessToken: string
  idToken: string | null
  refreshToken: string | null
}

/**
 * Checks a 200 answer of the token endpoint before anything of it is kept. A proxy, a CDN or a bug
 * can answer 200 with an HTML page, `{}` or wrongly typed fields; stored as is, such an answer
 * replaces a live refresh token with garbage (or with `""`), and a file holding a number where a
 * token belongs no longer loads. Returns the problem in words, or the tokens.
 */
export function readRefreshAnswer (body: unknown): RefreshedTokens | string {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'the answer is not a JSON object'
  const record = body as Record<string, unknown>
  const access = jwtField(record, 'access_token', true)
  if (typeof access !== 'object') return access
  const id = jwtField(record, 'id_token', false)
  if (typeof id !== 'object') return id
  const refresh = record.refresh_token
  if (refresh !== undefined && refresh !== null && (typeof refresh !== 'string' || refresh.trim() === '' || refresh.length > MAX_TOKEN_LENGTH)) {
    return 'refresh_token is not a non-empty string'
  }
  return { accessToken: access.value!, idToken: id.value, refreshToken: typeof refresh === 'string' ? refresh : null }
}

const MAX_TOKEN_LENGTH = 64 * 1024

function jwtField (record: Record<string, unknown>, name: string, required: boolean): { value: string | null } | string {
  const value = record[name]
  if (value === undefined || value === null) return required ? `${name} is missing` : { value: null }
  if (typeof value !== 'string' || value.length > MAX_TOKEN_LENGTH || decodeJwtPayload(value) === null) return `${name} is not a JWT`
  return { value }
}
