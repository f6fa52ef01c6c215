import { createHash, timingSafeEqual } from 'node:crypto'

/** Compares a presented secret with the expected ones in constant time (hashing first evens out lengths). */
export function matchesSecret (presented: string, expected: readonly string[]): boolean {
  const digest = createHash('sha256').update(presented).digest()
  let match = false
  for (const candidate of expected) {
    if (timingSafeEqual(digest, createHash('sha256').update(candidate).digest())) match = true
  }
  return match
}

/** The token of an `Authorization: Bearer …` header, or null. */
export function bearerToken (authorization: string | undefined): string | null {
  if (authorization === undefined) return null
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
  return match === null ? null : match[1]!
}

/** A token shortened so that it identifies itself without being usable. */
export function maskToken (token: string): string {
  if (token.length <= 16) return '…'
  return `${token.slice(0, 6)}…${token.slice(-4)}`
}

/** The proxy as it may be shown (API, logs, dashboard): the password replaced by `***`. */
export function maskProxyUrl (proxy: string): string {
  try {
    const url = new URL(proxy)
    const credentials = url.username === '' ? '' : `${url.username}${url.password === '' ? '' : ':***'}@`
    return `${url.protocol}//${credentials}${url.host}`
  } catch {
    return '***'
  }
}
