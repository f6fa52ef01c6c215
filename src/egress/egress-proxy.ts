import type { Agent as HttpAgent } from 'node:http'
import type { Socket } from 'node:net'
import { HttpsProxyAgent } from 'https-proxy-agent'
import { SocksClient } from 'socks'
import { SocksProxyAgent } from 'socks-proxy-agent'
import { Agent, buildConnector, fetch as undiciFetch, ProxyAgent, type Dispatcher } from 'undici'
import { ProxyUnreachableError } from '../pool/failover-policy.js'

/** Connection failures that, with a proxy in between, can only be the proxy's: it is the only host we connect to. */
const PROXY_CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT'])

/** The proxy's failure hidden in `err` (or its `cause`), as the account's fault; null when it is not one. */
export function proxyFailure (err: unknown, proxy: string): ProxyUnreachableError | null {
  for (let current = err as { code?: unknown, message?: unknown, cause?: unknown } | undefined, depth = 0; current != null && depth < 4; current = current.cause as typeof current, depth++) {
    if (current instanceof ProxyUnreachableError) return current
    const where = new URL(proxy).host
    if (typeof current.code === 'string' && PROXY_CONNECT_CODES.has(current.code)) return new ProxyUnreachableError(`${current.code} (${where})`)
    // undici's HTTP CONNECT refused (407 bad credentials, 502 the proxy cannot reach the target…).
    const status = typeof current.message === 'string' ? /^Proxy response \((\d+)\)/.exec(current.message) : null
    if (status !== null) return new ProxyUnreachableError(`the proxy answered ${status[1]} to CONNECT (${where})`)
  }
  return null
}

export interface EgressOptions {
  headersTimeout: number
  bodyTimeout: number
}

/**
 * One undici dispatcher per distinct proxy, made on first use and kept: accounts behind the same
 * proxy share its connections. Accounts without a proxy never come here.
 */
export class EgressDispatchers {
  private readonly dispatchers = new Map<string, Dispatcher>()
  /** Node http agents for the upstream WebSockets (the `ws` client speaks node:http, not undici). */
  private readonly agents = new Map<string, HttpAgent>()

  constructor (private readonly opts: EgressOptions) {}

  for (proxy: string): Dispatcher {
    let dispatcher = this.dispatchers.get(proxy)
    if (dispatcher === undefined) {
      dispatcher = this.create(proxy)
      this.dispatchers.set(proxy, dispatcher)
    }
    return dispatcher
  }

  /**
   * A node:http agent that tunnels through `proxy` (HTTP CONNECT or SOCKS5, the hostname resolved by
   * the proxy as the undici path does), for the account's upstream WebSocket.
   */
  agentFor (proxy: string): HttpAgent {
    let agent = this.agents.get(proxy)
    if (agent === undefined) {
      const url = new URL(proxy)
      agent = url.protocol === 'socks5:'
        ? new SocksProxyAgent(`socks5h:${proxy.slice('socks5:'.length)}`, { timeout: 15_000 })
        : new HttpsProxyAgent(proxy, { rejectUnauthorized: true })
      this.agents.set(proxy, agent)
    }
    return agent
  }

  /** `fetch` through the account's proxy (the global one without), its failures told apart. */
  fetchVia (proxy: string | null): typeof fetch {
    if (proxy === null) return fetch
    const dispatcher = this.for(proxy)
    return (async (input: string | URL, init?: RequestInit) => {
      try {
        return await undiciFetch(input, { ...(init as object), dispatcher })
      } catch (err) {
        throw proxyFailure(err, proxy) ?? err
      }
    }) as unknown as typeof fetch
  }

  get size (): number {
    return this.dispatchers.size
  }

  async close (): Promise<void> {
    const all = [...this.dispatchers.values()]
    this.dispatchers.clear()
    for (const agent of this.agents.values()) agent.destroy()
    this.agents.clear()
    await Promise.all(all.map(async (dispatcher) => { await dispatcher.destroy() }))
  }

  private create (proxy: string): Dispatcher {
    const timeouts = { headersTimeout: this.opts.headersTimeout, bodyTimeout: this.opts.bodyTimeout, keepAliveTimeout: 60_000 }
    const url = new URL(proxy)
    if (url.protocol !== 'socks5:') {
      return new ProxyAgent({ uri: proxy, ...timeouts, requestTls: { rejectUnauthorized: true }, proxyTls: { rejectUnauthorized: true } })
    }
    // SOCKS5 through the `socks` client (undici's own SOCKS support is still experimental); TLS
    // to the target is then undici's usual connector over the tunnel.
    const tls = buildConnector({ rejectUnauthorized: true })
    const proxyEndpoint = {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port),
      type: 5 as const,
      ...(url.username === '' ? {} : { userId: decodeURIComponent(url.username), password: decodeURIComponent(url.password) })
    }
    return new Agent({
      ...timeouts,
      connect: (options, callback) => {
        const port = Number(options.port !== '' ? options.port : options.protocol === 'https:' ? 443 : 80)
        SocksClient.createConnection({ proxy: proxyEndpoint, command: 'connect', destination: { host: options.hostname, port }, timeout: 15_000 })
          .then(({ socket }: { socket: Socket }) => {
            if (options.protocol !== 'https:') {
              callback(null, socket)
              return
            }
            tls({ ...options, httpSocket: socket } as buildConnector.Options, callback)
          }, (err: Error) => {
            // The socks client's messages name the step that failed, never the credentials.
            callback(new ProxyUnreachableError(`${err.message.replace(/\.$/, '')} (${url.host})`), null)
          })
      }
    })
  }
}
