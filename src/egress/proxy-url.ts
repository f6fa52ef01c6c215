/** A proxy setting that cannot be used; the message never repeats the credentials. */
export class ProxySettingError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ProxySettingError'
  }
}

const PROTOCOLS = new Set(['http:', 'https:', 'socks5:'])
const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443', 'socks5:': '1080' }

/**
 * Validates an account's egress proxy: `http://`, `https://` or `socks5://`, a host, optional
 * credentials and port, nothing else. Returns it normalised (the default port written out).
 */
export function parseProxyUrl (text: string): string {
  let url: URL
  try {
    url = new URL(text.trim())
  } catch {
    throw new ProxySettingError('proxy is not a URL (expected http://, https:// or socks5://[user:password@]host:port)')
  }
  if (!PROTOCOLS.has(url.protocol)) throw new ProxySettingError(`proxy must be http://, https:// or socks5://, not ${url.protocol}//`)
  if (url.hostname === '') throw new ProxySettingError('proxy has no host')
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') throw new ProxySettingError('proxy must be only scheme, credentials, host and port (no path, query or fragment)')
  if (url.password !== '' && url.username === '') throw new ProxySettingError('proxy has a password without a user name')
  const port = url.port === '' ? DEFAULT_PORTS[url.protocol]! : url.port
  const credentials = url.username === '' ? '' : `${url.username}${url.password === '' ? '' : `:${url.password}`}@`
  return `${url.protocol}//${credentials}${url.host.replace(/:\d+$/, '')}:${port}`
}
