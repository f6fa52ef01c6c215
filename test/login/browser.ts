import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'

/** What a browser does with an authorize URL: the issuer redirects to the callback URL (not followed yet). */
export async function authorize (authorizeUrl: string): Promise<string> {
  const answer = await fetch(authorizeUrl, { redirect: 'manual' })
  assert.equal(answer.status, 302, `the issuer redirects (got ${answer.status}: ${await answer.text()})`)
  return answer.headers.get('location')!
}

/** Follows an authorize URL to the page the callback listener shows at its end. */
export async function signIn (authorizeUrl: string): Promise<{ callbackUrl: string, status: number, html: string }> {
  const callbackUrl = await authorize(authorizeUrl)
  const page = await fetch(callbackUrl, { redirect: 'manual' })
  return { callbackUrl, status: page.status, html: await page.text() }
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function listening (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Resolves once nothing listens on 127.0.0.1:port any more (fails the test after 5 s). */
export async function closedSoon (port: number): Promise<void> {
  const deadline = Date.now() + 5000
  while (await listening(port)) {
    assert.ok(Date.now() < deadline, `the callback port ${port} is still open`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A program holding a port: answers every request (GET /cancel too) with 404 and keeps going. */
export async function occupyPort (t: TestContext, handler?: (server: Server, path: string) => void): Promise<number> {
  const server = createServer((req, res) => {
    res.writeHead(404, { connection: 'close' }).end('not a codex-eq listener')
    handler?.(server, req.url ?? '')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections() }))
  return (server.address() as AddressInfo).port
}

/** A loopback port nothing listens on (it was free a moment ago). */
export async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
