// @ts-check
/**
 * Calls to the management API. The admin token, when the server has one, lives in this tab's
 * sessionStorage and travels only in the Authorization header: never in an address, where it would
 * end up in history and logs.
 */

const TOKEN_KEY = 'codex-eq-admin-token'

/** An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} type
   * @param {string} message
   */
  constructor (status, type, message) {
    super(message)
    this.status = status
    this.type = type
  }
}

/** @type {() => void} */
let onUnauthorized = () => {}

/** @param {() => void} handler called whenever the server refuses the (missing or wrong) admin token */
export function whenUnauthorized (handler) {
  onUnauthorized = handler
}

/** @returns {boolean} */
export function hasToken () {
  return sessionStorage.getItem(TOKEN_KEY) !== null
}

/** @param {string} token */
export function storeToken (token) {
  sessionStorage.setItem(TOKEN_KEY, token)
}

export function forgetToken () {
  sessionStorage.removeItem(TOKEN_KEY)
}

/**
 * @param {'GET' | 'POST' | 'PATCH' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} [body] sent as JSON
 * @returns {Promise<any>} the parsed JSON answer (undefined for 204)
 */
export async function api (method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' }
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (token !== null) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'

  let response
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' })
  } catch {
    throw new ApiError(0, 'unreachable', 'cannot reach the server')
  }
  const text = await response.text()
  /** @type {any} */
  let data = null
  try {
    data = text === '' ? undefined : JSON.parse(text)
  } catch {
    data = null
  }
  if (response.ok) return data
  if (response.status === 401) onUnauthorized()
  const error = data !== null && typeof data === 'object' ? data.error : undefined
  throw new ApiError(
    response.status,
    typeof error?.type === 'string' ? error.type : 'http_error',
    typeof error?.message === 'string' ? error.message : `the server answered ${response.status} ${response.statusText}`.trim()
  )
}
