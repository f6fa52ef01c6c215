import fp from 'fastify-plugin'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from 'typebox'
import { RequestHistory } from '../src/pool/request-history.js'
import { FileUsageLedger } from '../src/store/usage-ledger-file.js'
import { DAY_MS, emptyTotals, type UsageLedger } from '../src/store/usage-ledger.js'
import { guardManagement } from './management-scope.js'
import { errorBody } from './schemas.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** What every delivered answer cost, per account × key × model × hour. */
    ledger: UsageLedger
    /** The last few hundred `/v1` requests and the last hours' requests and failovers, for the dashboard. */
    requestHistory: RequestHistory
  }
}

const UsageQuery = Type.Object({
  from: Type.Optional(Type.String({ maxLength: 40 })),
  to: Type.Optional(Type.String({ maxLength: 40 })),
  by: Type.Optional(Type.Union([Type.Literal('account'), Type.Literal('key'), Type.Literal('model')])),
  bucket: Type.Optional(Type.Union([Type.Literal('hour'), Type.Literal('day')]))
}, { additionalProperties: false })

const RecentQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 }))
}, { additionalProperties: false })

/** `from`/`to` as ISO dates or epoch milliseconds; by default the last 7 days. */
function timeRange (query: { from?: string, to?: string }, now: number): { from: number, to: number } | string {
  const read = (text: string | undefined, fallback: number): number | null => {
    if (text === undefined || text === '') return fallback
    const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text)
    return Number.isFinite(ms) ? ms : null
  }
  const to = read(query.to, now)
  const from = to === null ? null : read(query.from, to - 7 * DAY_MS)
  if (from === null || to === null) return 'from and to must be ISO dates (2026-01-31 or 2026-01-31T12:00:00Z) or epoch milliseconds'
  if (from >= to) return 'from must be before to'
  return { from, to }
}

/**
 * The ledger with `--usage-retention 0`: nothing is counted or written (the proxy does not even
 * watch streams for their usage), `/usage` answers empty, and no key reaches a daily limit.
 */
const NO_LEDGER: UsageLedger = {
  record: () => {},
  recordQuota: () => {},
  keyTokensSince: () => 0,
  query: (q) => ({ from: new Date(q.from).toISOString(), to: new Date(q.to).toISOString(), by: q.by, bucket: q.bucket, totals: emptyTotals(), groups: [] }),
  quotaHistory: (from, to) => ({ from: new Date(from).toISOString(), to: new Date(to).toISOString(), accounts: [] }),
  open: async () => {},
  close: async () => {}
}

/** Opens the usage ledger (in the auths dir, or in the shared store) and answers `GET /usage`, `GET /usage/quota`, `GET /requests/recent`, `GET /requests/activity`. */
async function usageLedgerPlugin (fastify: FastifyInstance): Promise<void> {
  const config = fastify.appConfig
  const onWriteError = (err: Error): void => { fastify.log.error({ err: { message: err.message } }, 'could not write the usage ledger; will try again') }
  const ledger = config.usageRetentionMs === 0
    ? NO_LEDGER
    : fastify.sharedStore !== null
      ? fastify.sharedStore.usageLedger({ retentionMs: config.usageRetentionMs, now: () => fastify.pool.now(), onWriteError })
      : new FileUsageLedger(config.authsDir, {
        retentionMs: config.usageRetentionMs,
        now: () => fastify.pool.now(),
        onWriteError,
        onUnreadable: (keptAt, err) => { fastify.log.error({ keptAt, err: { message: err.message } }, 'the usage ledger could not be read: it was kept aside and counting starts afresh') }
      })
  await ledger.open()
  fastify.decorate('ledger', ledger)
  const history = new RequestHistory()
  fastify.decorate('requestHistory', history)
  fastify.pool.on('failover', (event: { cause?: string }) => { history.failover(fastify.pool.now(), event.cause ?? 'account') })
  fastify.addHook('onClose', async () => { await ledger.close() })

  fastify.register(async (api) => {
    await guardManagement(api, config.adminToken)
    // Checked as sent (all text): the default validator would drop unknown parameters silently.
    api.get('/usage', { schema: { querystring: UsageQuery }, validatorCompiler: TypeBoxValidatorCompiler }, async (request, reply) => {
      const query = request.query as Static<typeof UsageQuery>
      const range = timeRange(query, fastify.pool.now())
      if (typeof range === 'string') return reply.code(400).send(errorBody('invalid_request', range))
      return ledger.query({ ...range, by: query.by ?? 'account', bucket: query.bucket ?? 'day' })
    })
    api.get('/usage/quota', { schema: { querystring: Type.Omit(UsageQuery, ['by', 'bucket']) }, validatorCompiler: TypeBoxValidatorCompiler }, async (request, reply) => {
      const range = timeRange(request.query as { from?: string, to?: string }, fastify.pool.now())
      if (typeof range === 'string') return reply.code(400).send(errorBody('invalid_request', range))
      return ledger.quotaHistory(range.from, range.to)
    })
    api.get('/requests/recent', { schema: { querystring: RecentQuery } }, async (request) => {
      return history.list((request.query as Static<typeof RecentQuery>).limit)
    })
    api.get('/requests/activity', async () => history.hourly())
  })
}

export default fp(usageLedgerPlugin, { fastify: '5.x', name: 'usage-ledger', dependencies: ['account-pool'] })
