import { createHash, randomBytes } from 'node:crypto'

/** The claim object holding the ChatGPT account, plan and user ids. */
export const AUTH_CLAIM = 'https://api.openai.com/auth'
export const PROFILE_CLAIM = 'https://api.openai.com/profile'

export function randomId (bytes = 16): string {
  return randomBytes(bytes).toString('base64url')
}

export function randomHex (bytes = 16): string {
  return randomBytes(bytes).toString('hex')
}

/** A JWT-shaped string: nobody verifies the signature, so it is random bytes (which also makes every token unique). */
export function makeJwt (payload: Record<string, unknown>): string {
  const header = { alg: 'RS256', typ: 'JWT', kid: 'fake-key' }
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${encode(header)}.${encode(payload)}.${randomId(32)}`
}

export function decodeJwtPayload (token: string): Record<string, any> {
  const part = token.split('.')[1]
  if (part === undefined) throw new Error('not a JWT')
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, any>
}

/** PKCE S256: base64url (no padding) of the SHA-256 of the verifier. */
export function pkceChallenge (verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url')
}
