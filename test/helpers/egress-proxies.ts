import { createServer as createHttpServer } from 'node:http'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { createProxy } from 'proxy'

/** What a proxy carried, read off the plain HTTP inside its tunnels (the fakes speak plain HTTP). */
export interface CarriedRequest {
  method: string
  path: string
  /** The chatgpt-account-id header, when there is one. */
  accountId: string | undefined
}

export interface TestProxy {
  url: string
  /** Tunnels opened (CONNECT requests, SOCKS connects), accepted or not. */
  tunnels: number
  /** Tunnels refused because of missing or wrong credentials. */
  refused: number
  carried: () => CarriedRequest[]
}

/** Records every chunk a client sends into a tunnel (bounded), for `carried()`. */
function sniffer (): { watch: (socket: Socket) => void, carried: () => CarriedRequest[] } {
  const streams: string[] = []
  return {
    watch (socket) {
      const index = streams.push('') - 1
      socket.on('data', (chunk: Buffer) => {
        if (streams[index]!.length < 4 * 1024 * 1024) streams[index] += chunk.toString('latin1')
      })
    },
    carried () {
      const found: CarriedRequest[] = []
      for (const text of streams) {
        // Unanchored: on a kept-alive tunnel a request line follows the previous body directly.
        for (const match of text.matchAll(/(GET|POST|PUT|PATCH|DELETE) (\/\S*) HTTP\/1\.1\r\n([\s\S]*?)\r\n\r\n/g)) {
          const account = /(?:^|\r\n)chatgpt-account-id: *([^\r\n]+)/i.exec(match[3]!)
          found.push({ method: match[1]!, path: match[2]!, accountId: account?.[1]?.trim() })
        }
      }
      return found
    }
  }
}

async function listen (t: TestContext, server: Server, sockets: Set<Socket>): Promise<number> {
  server.on('connection', (socket: Socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  })
  return (server.address() as AddressInfo).port
}

/** An HTTP CONNECT proxy (the `proxy` package) that wants `user:password`. */
export async function startHttpProxy (t: TestContext, user: string, password: string): Promise<TestProxy> {
  const sniff = sniffer()
  const server = createProxy(createHttpServer())
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
  const proxy: TestProxy = { url: '', tunnels: 0, refused: 0, carried: sniff.carried }
  server.authenticate = (req) => {
    const ok = req.headers['proxy-authorization'] === expected
    if (!ok) proxy.refused++
    return ok
  }
  // Prepended: sees the tunnel's client socket before the proxy pipes it on.
  server.prependListener('connect', (_req, socket: Socket) => {
    proxy.tunnels++
    sniff.watch(socket)
  })
  const port = await listen(t, server, new Set())
  proxy.url = `http://${user}:${password}@127.0.0.1:${port}`
  return proxy
}

/**
 * A minimal SOCKS5 server (RFC 1928, CONNECT only, with RFC 1929 user/password) for tests: enough
 * to carry undici's connections and check the credentials, nothing more.
 */
export async function startSocks5Proxy (t: TestContext, user: string, password: string): Promise<TestProxy> {
  const sniff = sniffer()
  const proxy: TestProxy = { url: '', tunnels: 0, refused: 0, carried: sniff.carried }
  const server = createServer((client) => {
    client.on('error', () => {})
    let buffer = Buffer.alloc(0)
    let stage: 'greeting' | 'auth' | 'request' | 'open' = 'greeting'
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk])
      if (stage === 'greeting') {
        if (buffer.length < 2 || buffer.length < 2 + buffer[1]!) return
        const methods = buffer.subarray(2, 2 + buffer[1]!)
        buffer = buffer.subarray(2 + buffer[1]!)
        if (!methods.includes(0x02)) {
          proxy.refused++
          client.end(Buffer.from([0x05, 0xff]))
          return
        }
        client.write(Buffer.from([0x05, 0x02]))
        stage = 'auth'
      }
      if (stage === 'auth') {
        if (buffer.length < 2) return
        const userLength = buffer[1]!
        if (buffer.length < 3 + userLength) return
        const passwordLength = buffer[2 + userLength]!
        if (buffer.length < 3 + userLength + passwordLength) return
        const givenUser = buffer.subarray(2, 2 + userLength).toString()
        const givenPassword = buffer.subarray(3 + userLength, 3 + userLength + passwordLength).toString()
        buffer = buffer.subarray(3 + userLength + passwordLength)
        if (givenUser !== user || givenPassword !== password) {
          proxy.refused++
          client.end(Buffer.from([0x01, 0x01]))
          return
        }
        client.write(Buffer.from([0x01, 0x00]))
        stage = 'request'
      }
      if (stage === 'request') {
        if (buffer.length < 5) return
        const type = buffer[3]!
        const addressLength = type === 0x01 ? 4 : type === 0x03 ? 1 + buffer[4]! : 16
        if (buffer.length < 4 + addressLength + 2) return
        const host = type === 0x01 ? [...buffer.subarray(4, 8)].join('.') : type === 0x03 ? buffer.subarray(5, 5 + buffer[4]!).toString() : '::1'
        const port = buffer.readUInt16BE(4 + addressLength)
        buffer = buffer.subarray(4 + addressLength + 2)
        stage = 'open'
        proxy.tunnels++
        client.off('data', onData)
        client.pause()
        const target = connect(port, host, () => {
          client.write(Buffer.from([0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0, 0]))
          sniff.watch(client)
          if (buffer.length > 0) target.write(buffer)
          client.pipe(target)
          target.pipe(client)
          client.resume()
        })
        target.on('error', () => { client.end(Buffer.from([0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0])) })
        client.on('close', () => target.destroy())
        target.on('close', () => client.destroy())
      }
    }
    client.on('data', onData)
  })
  const port = await listen(t, server, new Set())
  proxy.url = `socks5://${user}:${password}@127.0.0.1:${port}`
  return proxy
}
