import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { WebSocketServer } from 'ws'
import type { Config } from '../src/config.js'
import { NO_KEY } from '../src/pool/client-keys.js'
import { keyRefusal } from '../src/pool/key-answer.js'
import { bearerToken } from '../src/secrets.js'
import { fromAnotherSite, isLoopbackHost } from '../src/wire/cross-site.js'
import { forwardRequestHeaders, upstreamPath } from '../src/wire/proxy-headers.js'
import { refuseUpgrade } from '../src/wire/upgrade-refusal.js'
import { WebSocketSession } from './websocket-session.js'

export interface WebSocketPluginOptions {
  config: Config
}

/** The client's handshake headers: the upstream handshake is the ws client's own. */
const HANDSHAKE = /^sec-websocket-/

/**
 * The WebSocket transport on `…/responses` (protocol §5.6). Switched off, no 'upgrade' listener is
 * installed: Node then routes an upgrade as a plain request and the proxy answers 426, which
 * moves Codex to HTTP at once. The guards of the HTTP proxy apply to the upgrade: the host check,
 * the cross-site check and the API keys.
 */
async function websocketPlugin (fastify: FastifyInstance, opts: WebSocketPluginOptions): Promise<void> {
  const { config } = opts
  if (!config.websocket) return
  const { forwarder, pool, metrics } = fastify
  const upstreamUrl = config.upstream.replace(/^http/, 'ws') + '/responses'
  const responsesPath = `${forwarder.basePath}/responses`
  const server = new WebSocketServer({ noServer: true, maxPayload: config.bodyLimit, perMessageDeflate: false })

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const headers = request.headers
    if (config.adminToken === null && !isLoopbackHost(headers.host)) return refuseUpgrade(socket, 403, { error: { type: 'unknown_host', message: 'without an admin token this server answers only to localhost, 127.0.0.1 and [::1]' } })
    if (fromAnotherSite(headers)) return refuseUpgrade(socket, 403, { error: { type: 'cross_site_request', message: 'requests from web pages of other sites are refused' } })
    const path = upstreamPath(request.url ?? '/', forwarder.basePath)
    if (path === null) return refuseUpgrade(socket, 404, { error: { type: 'not_found', message: 'WebSocket is served on /v1/responses and /backend-api/codex/responses' } })
    // The same client keys as over HTTP: a key over its limit or expired is refused before any account is involved.
    let keyName = NO_KEY
    if (fastify.clientKeys.required()) {
      const token = bearerToken(headers.authorization)
      const key = token === null ? null : fastify.clientKeys.identify(token)
      if (key === null) return refuseUpgrade(socket, 401, { error: { type: 'unauthorized', message: token === null ? 'API key needs an Authorization: Bearer header' : 'wrong API key' } }, { 'www-authenticate': 'Bearer' })
      const verdict = fastify.clientKeys.verdict(key)
      if (verdict.kind !== 'ok') {
        const answer = keyRefusal(key, verdict, pool.now())
        return refuseUpgrade(socket, answer.status, answer.body as object, answer.headers)
      }
      keyName = key.name
    }
    if (path !== responsesPath) return refuseUpgrade(socket, 426, { error: { type: 'invalid_request_error', code: 'websocket_not_supported', message: 'WebSocket is served on …/responses only: send this request over HTTP' } })
    server.handleUpgrade(request, socket, head, (client) => {
      const forwarded: Record<string, string> = {}
      const list = forwardRequestHeaders(request.rawHeaders, headers.connection)
      for (let i = 0; i < list.length; i += 2) if (!HANDSHAKE.test(list[i]!)) forwarded[list[i]!] = list[i + 1]!
      void new WebSocketSession(client, { pool, forwarder, metrics, config, log: fastify.log, egress: fastify.egress, budget: fastify.bodyBudget, upstreamUrl, serverUrl: `http://${headers.host ?? '127.0.0.1'}`, key: keyName, history: fastify.requestHistory }, forwarded, headers)
    })
  }
  fastify.server.on('upgrade', onUpgrade)
  fastify.addHook('preClose', async () => {
    fastify.server.off('upgrade', onUpgrade)
    for (const client of server.clients) client.close(1001, 'server shutting down')
  })
  fastify.addHook('onClose', async () => {
    for (const client of server.clients) client.terminate()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
}

export default fp(websocketPlugin, { fastify: '5.x', name: 'websocket', dependencies: ['account-pool', 'metrics', 'proxy', 'client-keys', 'usage-ledger'] })
