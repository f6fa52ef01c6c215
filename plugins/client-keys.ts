import fp from 'fastify-plugin'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from 'typebox'
import { ClientKeys, KEY_NAME_PATTERN, KeyError, type ClientKey } from '../src/pool/client-keys.js'
import { guardManagement } from './management-scope.js'
import { errorBody } from './schemas.js'

declare module 'fastify' {
  interface FastifyInstance {
    clientKeys: ClientKeys
  }
  interface FastifyRequest {
    /** The key a client API request came with (null while no key is required). */
    clientKey: ClientKey | null
  }
}

const CreateKeyBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64, pattern: KEY_NAME_PATTERN }),
  daily_token_limit: Type.Optional(Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 1e15 })])),
  expires_at: Type.Optional(Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 40 })]))
}, { additionalProperties: false })

const KeyParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' })
}, { additionalProperties: false })

/** The client keys (`--api-key` ones and those made at run time) and `GET/POST /keys`, `DELETE /keys/:id`. */
async function clientKeysPlugin (fastify: FastifyInstance): Promise<void> {
  const config = fastify.appConfig
  const keys = new ClientKeys(config.apiKeys, fastify.keyStore, fastify.ledger, () => fastify.pool.now())
  await keys.open()
  fastify.decorate('clientKeys', keys)
  fastify.decorateRequest('clientKey', null)
  // Last-use times are worth a write a minute at most, not one per request.
  const saving = setInterval(() => {
    keys.saveLastUse().catch((err: Error) => { fastify.log.error({ err: { message: err.message } }, 'could not save the client keys\' last use') })
  }, 60_000)
  saving.unref()
  fastify.addHook('onClose', async () => {
    clearInterval(saving)
    await keys.saveLastUse()
  })

  fastify.register(async (api) => {
    await guardManagement(api, config.adminToken)
    api.get('/keys', async () => keys.list())

    // Checked as sent: the default validator would coerce `"daily_token_limit": "5"`.
    api.post('/keys', { schema: { body: CreateKeyBody }, validatorCompiler: TypeBoxValidatorCompiler }, async (request, reply) => {
      const body = request.body as Static<typeof CreateKeyBody>
      let expiresAt: number | null = null
      if (body.expires_at != null) {
        expiresAt = Date.parse(body.expires_at)
        if (!Number.isFinite(expiresAt)) return reply.code(400).send(errorBody('invalid_request', 'expires_at must be an ISO date, like 2026-12-31 or 2026-12-31T18:00:00Z'))
      }
      try {
        const { key, secret } = await keys.create({ name: body.name, dailyTokenLimit: body.daily_token_limit ?? null, expiresAt })
        request.log.info({ key: key.id, name: key.name }, 'client key created')
        return await reply.code(201).send({ ...key, secret })
      } catch (err) {
        if (err instanceof KeyError) return reply.code(err.statusCode).send(errorBody(err.type, err.message))
        throw err
      }
    })

    api.delete('/keys/:id', { schema: { params: KeyParams } }, async (request, reply) => {
      const { id } = request.params as Static<typeof KeyParams>
      try {
        if (!await keys.remove(id)) return reply.code(404).send(errorBody('not_found', `no key ${id}`))
      } catch (err) {
        if (err instanceof KeyError) return reply.code(err.statusCode).send(errorBody(err.type, err.message))
        throw err
      }
      request.log.info({ key: id }, 'client key deleted')
      return reply.code(204).send()
    })
  })
}

export default fp(clientKeysPlugin, { fastify: '5.x', name: 'client-keys', dependencies: ['account-pool', 'usage-ledger'] })
