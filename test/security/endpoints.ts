/**
 * Every management and login endpoint, for the tests that must cover them all (credentials, bad
 * input, cross-site requests). `/healthz` is left out on purpose: it is open and shows only counts.
 */
export interface Endpoint {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  /** With `:id` where an account (or login) id goes. */
  path: string
  /** Changes state when it succeeds (what another site must not be able to trigger). */
  changes: boolean
  /** Takes a JSON body. */
  json: boolean
}

export const ENDPOINTS: Endpoint[] = [
  { method: 'GET', path: '/info', changes: false, json: false },
  { method: 'GET', path: '/metrics', changes: false, json: false },
  { method: 'GET', path: '/accounts', changes: false, json: false },
  { method: 'GET', path: '/audit', changes: false, json: false },
  { method: 'PATCH', path: '/accounts/:id', changes: true, json: true },
  { method: 'DELETE', path: '/accounts/:id', changes: true, json: false },
  { method: 'POST', path: '/accounts/:id/refresh', changes: true, json: false },
  { method: 'POST', path: '/accounts/:id/enable', changes: true, json: false },
  { method: 'POST', path: '/accounts/:id/select', changes: true, json: false },
  { method: 'POST', path: '/accounts/import', changes: true, json: true },
  { method: 'GET', path: '/auth/login', changes: true, json: false },
  { method: 'POST', path: '/auth/login', changes: true, json: false },
  { method: 'GET', path: '/auth/login/:id', changes: false, json: false },
  { method: 'POST', path: '/auth/callback-url', changes: true, json: true },
  { method: 'POST', path: '/auth/device', changes: true, json: false },
  { method: 'GET', path: '/auth/device/:id', changes: false, json: false },
  { method: 'GET', path: '/keys', changes: false, json: false },
  { method: 'POST', path: '/keys', changes: true, json: true },
  { method: 'DELETE', path: '/keys/:id', changes: true, json: false },
  { method: 'GET', path: '/usage', changes: false, json: false },
  { method: 'GET', path: '/usage/quota', changes: false, json: false },
  { method: 'GET', path: '/requests/recent', changes: false, json: false },
  { method: 'GET', path: '/requests/activity', changes: false, json: false }
]

export function pathFor (endpoint: Endpoint, id: string): string {
  return endpoint.path.replace(':id', encodeURIComponent(id))
}
