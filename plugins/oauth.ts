import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Type } from 'typebox'
import { toAccountView } from '../src/pool/account-view.js'
import { isLoopback } from '../src/config.js'
import { fromAnotherSite, isLoopbackHost } from '../src/wire/cross-site.js'
import { BrowserLogins } from '../src/login/browser-logins.js'
import type { CallbackRoutes, Page, RunningServer } from '../src/login/callback-listener.js'
import { DeviceLogins } from '../src/login/device-logins.js'
import { LoginError } from '../src/login/login-error.js'
import type { LoginState } from '../src/login/login-records.js'
import { BoundedMap } from '../src/pool/bounded-map.js'
import type { AuditActor } from '../src/audit/audit-log.js'
import { auditActor } from './audit.js'
import { bearerGuard } from './bearer-guard.js'
import { refuseUnexpectedBody, requireJsonBody } from './body-guard.js'
import { refuseOtherSites } from './site-guard.js'
import { errorBody } from './schemas.js'

const LoginIdParams = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })
}, { additionalProperties: false })

const CallbackUrlBody = Type.Object({
  url: Type.String({ minLength: 1, maxLength: 8192 })
}, { additionalProperties: false })

/**
 * The temporary Fastify instance on the callback port (127.0.0.1, where Codex's own login server
 * listens too): the issuer's redirect and `GET /cancel`. Used by the server and by `codex-eq login`.
 */
export async function serveCallbacks (port: number, routes: CallbackRoutes): Promise<RunningServer> {
  // No logger: the callback query holds the OAuth code and state.
  const app = Fastify({ logger: false })
  const send = (reply: FastifyReply, page: Page): FastifyReply => reply
    .code(page.status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    // The page links to the dashboard; the code and state in this URL must not travel as a Referer.
    .header('referrer-policy', 'no-referrer')
    // So that closing the listener right after this page does not wait for the browser's keep-alive.
    .header('connection', 'close')
    .send(page.html)
  app.get('/auth/callback', async (request, reply) => send(reply, await routes.callback(new URLSearchParams(request.url.split('?')[1] ?? ''))))
  // Codex's own login server is cancelled this way by a local program; a web page of another site
  // (an <img> pointing here) or a rebound DNS name must not cancel pending sign-ins.
  app.get('/cancel', async (request, reply) => {
    if (fromAnotherSite(request.headers) || !isLoopbackHost(request.headers.host)) {
      return send(reply, { status: 403, html: '<!doctype html><title>Refused</title><p>Only a program on this machine may cancel a pending sign-in.</p>' })
    }
    return send(reply, await routes.cancel())
  })
  try {
    await app.listen({ host: '127.0.0.1', port })
  } catch (err) {
    await app.close()
    throw err
  }
  return { port: (app.server.address() as AddressInfo).port, close: async () => { await app.close() } }
}

/**
 * Adding accounts by signing in: browser logins (`/auth/login`, finished by the callback listener or
 * a pasted redirect URL) and device-code logins (`/auth/device`). Thin: the flows live in src/login.
 */
async function oauthPlugin (fastify: FastifyInstance): Promise<void> {
  const { pool, oauthClient, appConfig: config } = fastify
  const now = (): number => pool.now()
  const store = async (tokens: Parameters<typeof pool.importTokens>[0]): Promise<string> => (await pool.importTokens(tokens)).account.id
  /** Who started each pending login: the audit names them when it completes, maybe much later. */
  const starters = new BoundedMap<AuditActor>(200)
  const onSettled = (kind: string) => (id: string, state: LoginState<string>): void => {
    const actor = starters.peek(id)
    if (state.status === 'complete') {
      fastify.log.info({ login: id, account: state.result }, `${kind} login added an account`)
      if (actor !== undefined) fastify.audit.record({ action: 'login_completed', actor, account: { id: state.result!, email: pool.get(state.result!)?.email ?? null }, details: { flow: kind } })
    } else fastify.log.warn({ login: id, status: state.status }, `${kind} login ended without an account: ${state.error ?? ''}`)
  }

  const logins = new BrowserLogins<string>({
    oauth: oauthClient,
    callbackPort: config.callbackPort,
    serve: serveCallbacks,
    store,
    describe: (id) => pool.get(id)?.email ?? `account ${id}`,
    backUrl: () => dashboardUrl(fastify),
    now,
    onSettled: onSettled('browser')
  })
  const devices = new DeviceLogins<string>({ oauth: oauthClient, store, now, onSettled: onSettled('device') })
  fastify.addHook('onClose', async () => {
    devices.close()
    await logins.close()
  })

  /** The account as GET /accounts shows it (it may have been removed since the login). */
  const viewOf = (id: string | undefined) => {
    const account = id === undefined ? undefined : pool.get(id)
    return account === undefined ? undefined : toAccountView(account, pool.now(), pool.currentId())
  }
  const statusBody = (state: LoginState<string> | undefined, id: string, reply: FastifyReply) => {
    if (state === undefined) return reply.code(404).send(errorBody('not_found', `no login ${id} (finished logins are forgotten after an hour)`))
    const account = viewOf(state.result)
    return {
      status: state.status,
      ...(account === undefined ? {} : { account }),
      ...(state.error === undefined ? {} : { error: state.error })
    }
  }

  fastify.register(async (api) => {
    api.addHook('onRequest', refuseOtherSites)
    api.addHook('onRequest', bearerGuard(config.adminToken === null ? [] : [config.adminToken], 'admin token'))
    api.addHook('onRequest', requireJsonBody)
    api.addHook('preValidation', refuseUnexpectedBody)
    // The dashboard may POST with a JSON content type and no body; these routes take none anyway.
    const json = api.getDefaultJsonParser('error', 'error')
    api.removeContentTypeParser('application/json')
    api.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
      if (body === '') done(null, undefined)
      else json(request, body as string, done)
    })
    api.setErrorHandler((error, _request, reply) => {
      if (error instanceof LoginError) return reply.code(error.statusCode).send(errorBody(error.kind, error.message))
      throw error
    })

    const startLogin = async (request: FastifyRequest) => {
      const login = await logins.start()
      starters.set(login.id, auditActor(fastify, request))
      return login
    }

    api.get('/auth/login', async (request, reply) => reply.redirect((await startLogin(request)).authorizeUrl, 302))

    api.post('/auth/login', async (request) => {
      const login = await startLogin(request)
      return { login_id: login.id, authorize_url: login.authorizeUrl, expires_at: new Date(login.expiresAt).toISOString() }
    })

    api.get('/auth/login/:id', { schema: { params: LoginIdParams } }, async (request, reply) => {
      const { id } = request.params as { id: string }
      return statusBody(logins.status(id), id, reply)
    })

    api.post('/auth/callback-url', { schema: { body: CallbackUrlBody } }, async (request) => {
      const id = await logins.completeFromUrl((request.body as { url: string }).url)
      return { account: viewOf(id) ?? null }
    })

    api.post('/auth/device', async (request) => {
      const device = await devices.start()
      starters.set(device.id, auditActor(fastify, request))
      return {
        id: device.id,
        user_code: device.userCode,
        verification_url: device.verificationUrl,
        interval: Math.ceil(device.intervalMs / 1000),
        expires_at: new Date(device.expiresAt).toISOString()
      }
    })

    api.get('/auth/device/:id', { schema: { params: LoginIdParams } }, async (request, reply) => {
      const { id } = request.params as { id: string }
      return statusBody(devices.status(id), id, reply)
    })
  })
}

/** The dashboard as a browser on this machine reaches it (the success page links back to it). */
function dashboardUrl (fastify: FastifyInstance): string | null {
  const address = fastify.server.address()
  if (address === null || typeof address === 'string') return null
  const host = fastify.appConfig.host
  const shown = isLoopback(host) || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  return `http://${shown}:${address.port}/`
}

export default fp(oauthPlugin, { fastify: '5.x', name: 'oauth', dependencies: ['account-pool', 'audit'] })
