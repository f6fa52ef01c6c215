import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyHelmet from '@fastify/helmet'
import fastifyStatic from '@fastify/static'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ambiguousMessage, matchAccount } from '../src/pool/account-match.js'
import { toAccountView, type AccountView } from '../src/pool/account-view.js'
import { AuthFileError, parseImport } from '../src/tokens/auth-file.js'
import { parseProxyUrl, ProxySettingError } from '../src/egress/proxy-url.js'
import { PoolError } from '../src/pool/account-pool.js'
import { OAuthError } from '../src/tokens/oauth-client.js'
import { auditActor } from './audit.js'
import { SECURITY_HEADERS, guardManagement } from './management-scope.js'
import { AccountIdParams, errorBody } from './schemas.js'
import { VERSION as version } from '../src/version.js'
import type { AuditAction, AuditInput } from '../src/audit/audit-log.js'

/** Says what an import did: `created`, `updated` or `unchanged`. */
export const IMPORT_OUTCOME_HEADER = 'x-codex-eq-import'

const VIEWS_DIR = fileURLToPath(new URL('../../views/', import.meta.url))
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot'))
const UPLOT_FILES = [
  ['/vendor/uplot.js', 'uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
  ['/vendor/uplot.css', 'uPlot.min.css', 'text/css; charset=utf-8']
] as const

/** An egress proxy URL, or null for none (checked by parseProxyUrl). */
const ProxySetting = Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 2048 })])

const AccountPatch = Type.Object({ proxy: ProxySetting }, { additionalProperties: false })

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
  proxy: Type.Optional(ProxySetting),
  force: Type.Optional(Type.Boolean())
}) // other fields are ignored: newer Codex versions write more of them into auth.json

const AuditQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 }))
}, { additionalProperties: false })

/** The management API (`/accounts…`, `/healthz`) and the dashboard's static files. Thin: every decision is the pool's. */
async function adminPlugin (fastify: FastifyInstance): Promise<void> {
  const pool = fastify.pool
  const views = () => {
    const now = pool.now()
    const current = pool.currentId()
    const cluster = pool.shared ? pool : undefined
    return pool.list().map((account) => toAccountView(account, now, current, cluster))
  }
  const viewOf = (id: string) => views().find((view) => view.id === id)
  const audit = (request: FastifyRequest, action: AuditAction, account: AccountView, details?: AuditInput['details']): void => {
    fastify.audit.record({ action, actor: auditActor(fastify, request), account: { id: account.id, email: account.email }, details })
  }
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
    // The chart library ships as a dependency and is served from here: the page loads nothing from elsewhere.
    for (const [path, file, type] of UPLOT_FILES) {
      const body = await readFile(join(UPLOT_DIR, file))
      dashboard.get(path, async (_request, reply) => reply.type(type).header('cache-control', 'public, max-age=3600').send(body))
    }
  })

  fastify.register(async (api) => {
    await guardManagement(api, fastify.appConfig.adminToken)

    // What the dashboard needs to show how to point the Codex CLI here; never the secrets themselves.
    api.get('/info', async (request) => ({
      version,
      base_url: `${request.protocol}://${request.host}/v1`,
      // The recommended setup's lines (README: Codex's own transport) when WebSocket is on.
      codex_base_url: `${request.protocol}://${request.host}/backend-api/codex`,
      chatgpt_base_url: `${request.protocol}://${request.host}/backend-api`,
      websocket: fastify.appConfig.websocket,
      api_keys_required: fastify.clientKeys.required(),
      admin_token_required: fastify.appConfig.adminToken !== null
    }))

    api.get('/accounts', async () => views())

    api.get('/audit', { schema: { querystring: AuditQuery } }, async (request) => fastify.audit.entries((request.query as { limit?: number }).limit))

    api.get('/accounts/:id', { schema: { params: AccountIdParams } }, async (request, reply) => {
      return await accountOf(request, reply) ?? reply
    })

    api.delete('/accounts/:id', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const account = await accountOf(request, reply)
      if (account === undefined) return reply
      if (!await pool.remove(account.id)) return reply.code(404).send(errorBody('not_found', `no account ${account.id}`))
      audit(request, 'account_delete', account)
      return reply.code(204).send()
    })

    api.post('/accounts/:id/refresh', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const account = await accountOf(request, reply)
      if (account === undefined) return reply
      try {
        await pool.forceRefresh(account.id)
      } catch (err) {
        const permanent = (err as { permanent?: boolean }).permanent === true
        audit(request, 'account_refresh', account, { result: permanent ? 'needs_login' : 'failed' })
        return reply.code(permanent ? 409 : 502).send(errorBody(permanent ? 'needs_login' : 'refresh_failed', (err as Error).message))
      }
      audit(request, 'account_refresh', account, { result: 'ok' })
      return viewOf(account.id)
    })

    api.patch('/accounts/:id', { schema: { params: AccountIdParams, body: AccountPatch }, validatorCompiler: TypeBoxValidatorCompiler }, async (request, reply) => {
      const account = await accountOf(request, reply)
      if (account === undefined) return reply
      const { proxy } = request.body as { proxy: string | null }
      let parsed: string | null
      try {
        parsed = proxy === null ? null : parseProxyUrl(proxy)
      } catch (err) {
        if (err instanceof ProxySettingError) return reply.code(400).send(errorBody('invalid_proxy', err.message))
        throw err
      }
      if (await pool.setProxy(account.id, parsed) === undefined) return reply.code(404).send(errorBody('not_found', `no account ${account.id}`))
      const view = viewOf(account.id)!
      audit(request, 'account_update', view, { proxy: view.proxy })
      return view
    })

    api.post('/accounts/:id/enable', { schema: { params: AccountIdParams } }, async (request, reply) => {
      const account = await accountOf(request, reply)
      if (account === undefined) return reply
      if (await pool.enable(account.id) === undefined) return reply.code(404).send(errorBody('not_found', `no account ${account.id}`))
      audit(request, 'account_enable', account)
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
      audit(request, 'account_select', account)
      return viewOf(account.id)
    })

    // Checked as sent: Fastify's default validator would coerce `"refresh_token": 12345` into a token.
    api.post('/accounts/import', { schema: { body: ImportBody }, validatorCompiler: TypeBoxValidatorCompiler, bodyLimit: 512 * 1024 }, async (request, reply) => {
      let result
      try {
        const proxy = (request.body as { proxy?: string | null }).proxy
        result = await pool.importTokens({ ...parseImport(request.body), ...(proxy === undefined ? {} : { proxy: proxy === null ? null : parseProxyUrl(proxy) }) })
      } catch (err) {
        if (err instanceof ProxySettingError) return reply.code(400).send(errorBody('invalid_proxy', err.message))
        if (err instanceof PoolError && err.statusCode === 409) return reply.code(409).send(errorBody('older_tokens', err.message))
        if (err instanceof AuthFileError || err instanceof PoolError || err instanceof OAuthError) {
          return reply.code(400).send(errorBody('invalid_tokens', err.message))
        }
        throw err
      }
      const view = viewOf(result.account.id)!
      audit(request, 'account_import', view, { created: result.created })
      // 200 for both an update and a no-op (the same tokens again); the header tells them apart.
      return reply.code(result.created ? 201 : 200).header(IMPORT_OUTCOME_HEADER, result.outcome).send(view)
    })
  })
}

export default fp(adminPlugin, { fastify: '5.x', name: 'admin', dependencies: ['account-pool', 'audit', 'client-keys'] })
