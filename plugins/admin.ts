import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import fastifyStatic from '@fastify/static'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { toAccountView } from '../src/account-view.js'
import { AuthFileError, parseImport } from '../src/auth-file.js'
import { PoolError } from '../src/account-pool.js'
import { OAuthError } from '../src/oauth-client.js'
import { bearerGuard } from './bearer-guard.js'
import { refuseUnexpectedBody, requireJsonBody } from './body-guard.js'
import { refuseOtherSites } from './site-guard.js'
import { AccountIdParams, errorBody } from './schemas.js'
import { VERSION as version } from '../src/version.js'

/** Says what an import did: `created`, `updated` or `unchanged`. */
export const IMPORT_OUTCOME_HEADER = 'x-codex-eq-import'

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
  account_id: Type.Optional(Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 200 })])),
  force: Type.Optional(Type.Boolean())
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
      api_keys_required: fastify.appConfig.apiKeys.length > 0,
      admin_token_required: fastify.appConfig.adminToken !== null
    }))

    api.get('/accounts', async () => views())

    api.delete('/accounts/:id', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const { id } = request.params as { id: string }
      if (!await pool.remove(id)) return reply.code(404).send(errorBody('not_found', `no account ${id}`))
      return reply.code(204).send()
    })

    api.post('/accounts/:id/refresh', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const { id } = request.params as { id: string }
      if (pool.get(id) === undefined) return reply.code(404).send(errorBody('not_found', `no account ${id}`))
      try {
        await pool.forceRefresh(id)
      } catch (err) {
        const permanent = (err as { permanent?: boolean }).permanent === true
        return reply.code(permanent ? 409 : 502).send(errorBody(permanent ? 'needs_login' : 'refresh_failed', (err as Error).message))
      }
      return viewOf(id)
    })

    api.post('/accounts/:id/enable', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const { id } = request.params as { id: string }
      if (await pool.enable(id) === undefined) return reply.code(404).send(errorBody('not_found', `no account ${id}`))
      return viewOf(id)
    })

    api.post('/accounts/:id/select', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const { id } = request.params as { id: string }
      try {
        if (await pool.select(id) === undefined) return reply.code(404).send(errorBody('not_found', `no account ${id}`))
      } catch (err) {
        if (err instanceof PoolError) return reply.code(err.statusCode).send(errorBody('not_usable', err.message))
        throw err
      }
      return viewOf(id)
    })

    // Checked as sent: Fastify's default validator would coerce `"refresh_token": 12345` into a token.
    api.post('/accounts/import', { schema: { body: ImportBody }, validatorCompiler: TypeBoxValidatorCompiler, bodyLimit: 512 * 1024 }, async (request, reply) => {
      let result
      try {
        result = await pool.importTokens(parseImport(request.body))
      } catch (err) {
        if (err instanceof PoolError && err.statusCode === 409) return reply.code(409).send(errorBody('older_tokens', err.message))
        if (err instanceof AuthFileError || err instanceof PoolError || err instanceof OAuthError) {
          return reply.code(400).send(errorBody('invalid_tokens', err.message))
        }
        throw err
      }
      // 200 for both an update and a no-op (the same tokens again); the header tells them apart.
      return reply.code(result.created ? 201 : 200).header(IMPORT_OUTCOME_HEADER, result.outcome).send(viewOf(result.account.id))
    })
  })
}

export default fp(adminPlugin, { fastify: '5.x', name: 'admin', dependencies: ['account-pool'] })
