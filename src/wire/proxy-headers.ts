/**
 * Header rules between the Codex CLI and the backend (protocol §3): pass through what the client
 * sent, except its own credentials, cookies and hop-by-hop headers; the pool adds the account's.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']

/** Never forwarded upstream. `accept-encoding` goes too: the stream must reach us uncompressed to pass events on as they come. */
const DROP_REQUEST = new Set([...HOP_BY_HOP, 'host', 'authorization', 'chatgpt-account-id', 'cookie', 'content-length', 'accept-encoding', 'expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip'])

/** Never passed back: hop-by-hop, and the upstream's cookies (they belong to the account's session). */
const DROP_RESPONSE = new Set([...HOP_BY_HOP, 'set-cookie', 'alt-svc'])

const NONE: readonly string[] = []
/** What nearly every client and upstream sends: read without splitting it on every request. */
const COMMON_CONNECTION = new Map<string, readonly string[]>(['keep-alive', 'Keep-Alive', 'close', 'Close'].map((value) => [value, [value.toLowerCase()]]))

/** The header names a `Connection` header lists (hop-by-hop for this one message). */
function connectionListed (value: string | undefined): readonly string[] {
  if (value === undefined) return NONE
  return COMMON_CONNECTION.get(value) ?? value.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== '')
}

/**
 * The client's headers to forward, as undici's flat [name, value, …] list (from Node's rawHeaders,
 * no copies of objects). `decoded`: the body goes upstream decoded, so its content-encoding stays here.
 */
export function forwardRequestHeaders (rawHeaders: string[], connection: string | undefined, decoded = false): string[] {
  const listed = connectionListed(connection)
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase()
    if (DROP_REQUEST.has(name) || (listed.length > 0 && listed.includes(name)) || (decoded && name === 'content-encoding')) continue
    out.push(name, rawHeaders[i + 1]!)
  }
  return out
}

/** The upstream's answer headers to pass on to the client. */
export function forwardResponseHeaders (headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionListed(typeof headers.connection === 'string' ? headers.connection : undefined)
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || DROP_RESPONSE.has(name) || (listed.length > 0 && listed.includes(name))) continue
    out[name] = value
  }
  return out
}

/**
 * Where clients reach the proxy: `/v1` (a custom provider's `base_url`) and `/backend-api/codex`
 * (Codex's built-in provider via `openai_base_url`, protocol §5.6). Both serve alike.
 */
export const PROXY_MOUNTS = ['/v1', '/backend-api/codex'] as const

/** Where Codex asks for the account's usage: `{chatgpt_base_url}/wham/usage`, or `/api/codex/usage` on a base without `/backend-api` (protocol §5.7). */
export const USAGE_PATHS = ['/backend-api/wham/usage', '/api/codex/usage'] as const

/**
 * Maps a URL under one of the proxy's mounts onto the upstream base path. Returns null for anything
 * that could leave the base: `.`/`..` segments (raw or percent-encoded), backslashes, encoded
 * slashes or NULs, `//`.
 */
const PLAIN_PATH = /^(\/[A-Za-z0-9_-]+)+$/

export function upstreamPath (url: string, basePath: string): string | null {
  const queryAt = url.indexOf('?')
  const path = queryAt === -1 ? url : url.slice(0, queryAt)
  const query = queryAt === -1 ? '' : url.slice(queryAt)
  const mount = PROXY_MOUNTS.find((prefix) => path.startsWith(prefix + '/'))
  if (mount === undefined) return null
  const rest = path.slice(mount.length)
  // The paths clients use (`/responses`, `/models`): nothing encoded, no dots, nothing to check.
  if (PLAIN_PATH.test(rest)) return basePath + rest + query
  let decoded: string
  try {
    decoded = decodeURIComponent(rest)
  } catch {
    return null
  }
  if (/[\\%\0]/.test(decoded) || decoded.includes('//') || /%2f/i.test(rest)) return null
  for (const segment of decoded.split('/')) {
    if (segment === '.' || segment === '..') return null
  }
  return basePath + rest + query
}
