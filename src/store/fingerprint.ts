import { createHash } from 'node:crypto'

/** A short, one-way fingerprint of a refresh token: a spent one is recognised without keeping it. */
export function tokenFingerprint (refreshToken: string): string {
  return createHash('sha256').update(refreshToken).digest('base64url').slice(0, 22)
}
