/**
 * What a web page of another site can make a browser send without asking the server first: form
 * posts, no-cors fetches and navigations. The pool uses no cookies, so such requests carry no
 * credentials; without an admin token they still must not reach the API. Browsers mark them
 * (`Sec-Fetch-Site`, older ones only `Origin`); the Codex CLI, curl and scripts send neither header.
 */
import { isLoopback } from '../config.js'

export interface RequestOrigin {
  host?: string
  origin?: string
  'sec-fetch-site'?: string
}

/** True when a browser says the request comes from a page of another site (or an opaque origin). */
export function fromAnotherSite (headers: RequestOrigin): boolean {
  const site = headers['sec-fetch-site']
  if (site !== undefined) return site !== 'same-origin' && site !== 'none'
  const origin = headers.origin
  if (origin === undefined) return false
  try {
    return new URL(origin).host !== headers.host // "null" (sandboxed frames, file:) fails to parse: foreign
  } catch {
    return true
  }
}

/**
 * True when a Host header names this machine's loopback (localhost, 127.x.x.x, [::1]; any port).
 * A page that points its own name at 127.0.0.1 (DNS rebinding) is same-origin to the browser,
 * which then marks nothing; only the Host header still names that site.
 */
export function isLoopbackHost (host: string | undefined): boolean {
  if (host === undefined) return false
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '')
  return isLoopback(name.toLowerCase())
}
