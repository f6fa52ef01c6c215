/**
 * What a web page of another site can make a browser send without asking the server first: form
 * posts, no-cors fetches and navigations. The pool uses no cookies, so such requests carry no
 * credentials; without an admin token they still must not reach the API. Browsers mark them
 * (`Sec-Fetch-Site`, older ones only `Origin`); the Codex CLI, curl and scripts send neither header.
 */
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

