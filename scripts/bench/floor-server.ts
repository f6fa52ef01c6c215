import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { LISTEN_BACKLOG, serveAsChild } from './child.js'
import { FloorPass } from './floor-pass.js'

/** The floor: the least a Node pass-through must do (see floor-pass.ts), on node:http alone. Buffers the body. */
const floor = new FloorPass(new URL(process.argv[2]!))

const server = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  req.once('end', () => { floor.passOn(req, res, Buffer.concat(chunks)) })
})

server.keepAliveTimeout = 72_000
server.listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, () => {
  serveAsChild((server.address() as AddressInfo).port, async () => {
    server.closeAllConnections()
    server.close()
    await floor.close()
  })
})
