import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'
import { benchTokens } from './bench-account.js'
import { LISTEN_BACKLOG, serveAsChild } from './child.js'

/**
 * The floor: the least a Node pass-through must do. Buffer the body; send it upstream with the
 * client's headers and a credential the size of an account's; pipe the answer back with the
 * upstream's headers. No pool, no failover, no logging, no metrics, no checks.
 */
const upstream = new URL(process.argv[2]!)
const basePath = upstream.pathname.replace(/\/+$/, '')
const pool = new Pool(upstream.origin, { keepAliveTimeout: 60_000 })
const credential = ['authorization', `Bearer ${benchTokens(1).accessToken}`, 'chatgpt-account-id', 'acct-bench-1']
/** What cannot be passed on as it is: the hop's own headers, and the body length (undici sets it). */
const HOP = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'])

const server = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  req.once('end', () => {
    const headers: string[] = []
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (!HOP.has(req.rawHeaders[i]!.toLowerCase())) headers.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!)
    }
    pool.request({ path: basePath + req.url!.slice(3), method: 'POST', headers: headers.concat(credential), body: Buffer.concat(chunks) }).then((answer) => {
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
  })
})

server.keepAliveTimeout = 72_000
server.listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, () => {
  serveAsChild((server.address() as AddressInfo).port, async () => {
    server.closeAllConnections()
    server.close()
    await pool.destroy()
  })
})
