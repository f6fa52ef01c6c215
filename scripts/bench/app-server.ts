import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { KeyFile } from '../../src/store/key-file.js'
import { BENCH_CLIENT_KEY, benchTokens } from './bench-account.js'
import { LISTEN_BACKLOG, serveAsChild } from './child.js'

/**
 * The app as `serve` builds it, with one account, pointed at the bench upstream. Args: upstream URL,
 * log level, then any of `keys` (a client key with a daily limit, the bench's BENCH_CLIENT_KEY, so
 * that every request is identified and checked against its limit in the usage ledger) and
 * `no-ledger` (`--usage-retention 0`: no usage ledger, streams not watched for their usage) and
 * `redis=URL` (the shared store on that Redis instead of the auths dir).
 */
const [upstream, logLevel, ...features] = process.argv.slice(2)
const redisUrl = features.find((feature) => feature.startsWith('redis='))?.slice('redis='.length)
const authsDir = await mkdtemp(join(tmpdir(), 'ceq-bench-'))
const config = loadConfig({
  host: '127.0.0.1',
  port: '0',
  authsDir: join(authsDir, 'auths'),
  upstream,
  logLevel,
  ...(features.includes('no-ledger') ? { usageRetention: '0' } : {}),
  ...(redisUrl !== undefined ? { redisUrl, instanceName: 'bench' } : {})
}, {})
if (features.includes('keys')) {
  await mkdir(config.authsDir, { recursive: true, mode: 0o700 })
  const hash = createHash('sha256').update(BENCH_CLIENT_KEY).digest('hex')
  await new KeyFile(config.authsDir).save([{ id: 'key_bench', name: 'bench', hash, createdAt: Date.now(), lastUsedAt: null, dailyTokenLimit: 1e15, expiresAt: null }])
}
const app = await buildApp(config)
await app.pool.importTokens(benchTokens(1))
await app.listen({ host: config.host, port: 0, backlog: LISTEN_BACKLOG })
const address = app.server.address()
serveAsChild(typeof address === 'object' && address !== null ? address.port : 0, async () => {
  app.server.closeAllConnections()
  await app.close()
  await rm(authsDir, { recursive: true, force: true })
})
