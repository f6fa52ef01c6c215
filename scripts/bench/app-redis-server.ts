import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { benchTokens } from './bench-account.js'
import { serveAsChild } from './child.js'

/**
 * The app on the shared (Redis) store, one account, pointed at the bench upstream: what an instance
 * of a multi-instance pool costs per request. Args: upstream URL, log level, Redis URL.
 */
const [upstream, logLevel, redisUrl] = process.argv.slice(2)
const authsDir = await mkdtemp(join(tmpdir(), 'ceq-bench-'))
const config = loadConfig({ host: '127.0.0.1', port: '0', authsDir: join(authsDir, 'auths'), upstream, logLevel, redisUrl, instanceName: 'bench' }, {})
const app = await buildApp(config)
await app.pool.importTokens(benchTokens(1))
await app.listen({ host: config.host, port: 0 })
const address = app.server.address()
serveAsChild(typeof address === 'object' && address !== null ? address.port : 0, async () => {
  app.server.closeAllConnections()
  await app.close()
  await rm(authsDir, { recursive: true, force: true })
})
