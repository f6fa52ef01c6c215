import type { IncomingMessage, ServerResponse } from 'node:http'
import { Pool } from 'undici'
import { benchTokens } from './bench-account.js'

/** What cannot be passed on as it is: the hop's own headers, and the body length (undici sets it). */
const HOP = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'])

/**
 * The least a Node pass-through must do with one request, shared by the floor and the floor on
 * Fastify: send the body upstream with the client's headers and a credential the size of an
 * account's; pipe the answer back with the upstream's headers. No pool, no failover, no logging,
 * no metrics, no checks.
 */
export class FloorPass {
  private readonly pool: Pool
  private readonly basePath: string
  private readonly credential = ['authorization', `Bearer ${benchTokens(1).accessToken}`, 'chatgpt-account-id', 'acct-bench-1']

  constructor (upstream: URL) {
    this.pool = new Pool(upstream.origin, { keepAliveTimeout: 60_000 })
    this.basePath = upstream.pathname.replace(/\/+$/, '')
  }

  /** `req`'s body already read whole into `body`; `req.url` under `/v1`. */
  passOn (req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const headers: string[] = []
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (!HOP.has(req.rawHeaders[i]!.toLowerCase())) headers.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!)
    }
    this.pool.request({ path: this.basePath + req.url!.slice(3), method: 'POST', headers: headers.concat(this.credential), body }).then((answer) => {
      const back: Record<string, string | string[]> = {}
      for (const name in answer.headers) {
        if (!HOP.has(name)) back[name] = answer.headers[name]!
      }
      res.writeHead(answer.statusCode, back)
      // pipe() is the cheapest way to pass a stream on (pipeline() adds an AbortController per call).
      answer.body.pipe(res)
      answer.body.once('error', () => { res.destroy() })
      res.once('close', () => { answer.body.destroy() })
    }, () => {
      res.writeHead(502).end()
    })
  }

  close (): Promise<void> {
    return this.pool.destroy()
  }
}
