import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import fastifyStatic from '@fastify/static'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ambiguousMessage, matchAccount } from '../src/pool/account-match.js'
import { toAccountView, type AccountView } from '../src/pool/account-view.js'
import { AuthFileError, parseImport } from '../src/tokens/auth-file.js'
import { PoolError } from '../src/pool/account-pool.js'
import { OAuthError } from '../src/tokens/oauth-client.js'
import { bearerGuard } from './bearer-guard.js'
import { refuseUnexpectedBody, requireJsonBody } from './body-guard.js'
import { refuseOtherSites } from './site-guard.js'
import { AccountIdParams, errorBody } from './schemas.js'
import { VERSION as version } from '../src/version.js'

const VIEWS_DIR = fileURLToPath(new URL('../../views/', import.meta.url))

/**
 * The dashboard loads only its own files: no inline script or style, no framing (clickjacking of the
 * remove buttons), nothing fetched from elsewhere. No HSTS and no upgrade-insecure-requests: the
 * service speaks plain HTTP, often on a LAN address.
 */
const SECURITY_HEADERS: FastifyHelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'"],
      connectSrc: ["'self'"],
      formAction: ["'self'"],
      baseUri: ["'none'"],
      objectSrc: ["'none'"],
      frameAncestors: ["'none'"]
    }
  },
  strictTransportSecurity: false,
  xFrameOptions: { action: 'deny' }
}

const ImportBody = Type.Object({
  auth_mode: Type.Optional(Type.String({ maxLength: 64 })),
  OPENAI_API_KEY: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 512 })])),
  last_refresh: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 64 })])),
  tokens: Type.Optional(Type.Object({
    id_token: Type.String({ minLength: 1, maxLength: 65536 }),
    access_token: Type.String({ minLength: 1, maxLength: 65536 }),
    refresh_token: Type.String({ minLength: 1, maxLength: 65536 }),
    account_id: Type.Optional(Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 200 })]))
  })),
  id_token: Type.Optional(Type.String({ minLength: 1, maxLength: 65536 })),
  access_token: Type.Optional(Type.String({ minLength: 1, maxLength: 65536 })),
  refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 65536 })),
  account_id: Type.Optional(Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 200 })]))
}) // other fields are ignored: newer Codex versions write more of them into auth.json

/** The management API (`/accounts…`, `/healthz`) and the dashboard's static files. Thin: every decision is the pool's. */
async function adminPlugin (fastify: FastifyInstance): Promise<void> {
  const pool = fastify.pool
  const views = () => {
    const now = pool.now()
    const current = pool.currentId()
    return pool.list().map((account) => toAccountView(account, now, current))
  }
  const viewOf = (id: string) => views().find((view) => view.id === id)
  /** The account a path's `:id` names (an id or an email), or undefined once the 404/409 answer is sent. */
  const accountOf = async (request: FastifyRequest, reply: FastifyReply): Promise<AccountView | undefined> => {
    const { id: key } = request.params as { id: string }
    const match = matchAccount(views(), key)
    if (match.kind === 'one') return match.view
    if (match.kind === 'many') await reply.code(409).send(errorBody('ambiguous_account', ambiguousMessage(key, match.views)))
    else await reply.code(404).send(errorBody('not_found', `no account ${key}`))
    return undefined
  }

  fastify.get('/healthz', async () => {
    const now = pool.now()
    const accounts = pool.list()
    return { status: 'ok', accounts: accounts.length, usable: accounts.filter((a) => !a.needsLogin && (a.disabledUntil === null || a.disabledUntil <= now)).length }
  })

  await fastify.register(async (dashboard) => {
    await dashboard.register(fastifyHelmet, SECURITY_HEADERS)
    await dashboard.register(fastifyStatic, { root: VIEWS_DIR, prefix: '/', index: ['index.html'], wildcard: false })
  })

  fastify.register(async (api) => {
    await api.register(fastifyHelmet, SECURITY_HEADERS)
    api.addHook('onRequest', refuseOtherSites)
    api.addHook('onRequest', bearerGuard(fastify.appConfig.adminToken === null ? [] : [fastify.appConfig.adminToken], 'admin token'))
    api.addHook('onRequest', requireJsonBody)
    api.addHook('preValidation', refuseUnexpectedBody)

    // What the dashboard needs to show how to point the Codex CLI here; never the secrets themselves.
    api.get('/info', async (request) => ({
      version,
      base_url: `${request.protocol}://${request.host}/v1`,
      // The recommended setup's lines (README: Codex's own transport) when WebSocket is on.
      codex_base_url: `${request.protocol}://${request.host}/backend-api/codex`,
      chatgpt_base_url: `${request.protocol}://${request.host}/backend-api`,
      websocket: fastify.appConfig.websocket,
      api_keys_required: fastify.appConfig.apiKeys.length > 0,
      admin_token_required: fastify.appConfig.adminToken !== null
    }))

    api.get('/accounts', async () => views())

    api.get('/accounts/:id', { schema: { params: AccountIdParams } }, async (request, reply) => {
      return await accountOf(request, reply) ?? reply
    })

    api.delete('/accounts/:id', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const account = await accountOf(request, reply)
      if (account === undefined) return reply
      if (!await pool.remove(account.id)) return reply.code(404).send(errorBody('not_found', `no account ${account.id}`))
      return reply.code(204).send()
    })

    api.post('/accounts/:id/refresh', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const account = await accountOf(request, reply)
      if (account === undefined) return reply
      try {
        await pool.forceRefresh(account.id)
      } catch (err) {
        const permanent = (err as { permanent?: boolean }).permanent === true
        return reply.code(permanent ? 409 : 502).send(errorBody(permanent ? 'needs_login' : 'refresh_failed', (err as Error).message))
      }
      return viewOf(account.id)
    })

    api.post('/accounts/:id/enable', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const account = await accountOf(request, reply)
      if (account === undefined) return reply
      if (await pool.enable(account.id) === undefined) return reply.code(404).send(errorBody('not_found', `no account ${account.id}`))
      return viewOf(account.id)
    })

    api.post('/accounts/:id/select', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const account = await accountOf(request, reply)
      if (account === undefined) return reply
      try {
        if (await pool.select(account.id) === undefined) return reply.code(404).send(errorBody('not_found', `no account ${account.id}`))
      } catch (err) {
        if (err instanceof PoolError) return reply.code(err.statusCode).send(errorBody('not_usable', err.message))
        throw err
      }
      return viewOf(account.id)
    })

    // Checked as sent: Fastify's default validator would coerce `"refresh_token": 12345` into a token.
    api.post('/accounts/import', { schema: { body: ImportBody }, validatorCompiler: TypeBoxValidatorCompiler, bodyLimit: 512 * 1024 }, async (request, reply) => {
      let result
      try {
        result = await pool.importTokens(parseImport(request.body))
      } catch (err) {
        if (err instanceof AuthFileError || err instanceof PoolError || err instanceof OAuthError) {
          return reply.code(400).send(errorBody('invalid_tokens', err.message))
        }
        throw err
      }
      return reply.code(result.created ? 201 : 200).send(viewOf(result.account.id))
    })
  })
}

export default fp(adminPlugin, { fastify: '5.x', name: 'admin', dependencies: ['account-pool'] })
