import { LoginError } from './login-error.js'

const EXAMPLE = 'http://localhost:1455/auth/callback?code=…&state=…'

/**
 * Reads the address a browser ended on after signing in (pasted by the user when nothing listened
 * there) and returns its query. Accepts it with or without the `http://`.
 */
export function parseRedirectUrl (text: string): URLSearchParams {
  const trimmed = text.trim()
  let url: URL
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`)
  } catch {
    throw new LoginError('invalid_url', `that is not a URL; paste the whole address the browser ended on, like ${EXAMPLE}`)
  }
  if (url.pathname !== '/auth/callback' || !url.searchParams.has('state')) {
    throw new LoginError('invalid_url', `that is not the sign-in redirect; paste the address the browser ended on, like ${EXAMPLE}`)
  }
  return url.searchParams
}
