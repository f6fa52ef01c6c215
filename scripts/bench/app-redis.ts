import { launchRedis } from '../../test/support/redis-server.js'
import { startChild, type Child } from './child.js'

/**
 * The `app-redis` load target: a redis-server of its own on a free port (no persistence) and the
 * app on it; stopping the target stops both.
 */
export async function startAppOnRedis (upstreamBase: string, execArgv: string[]): Promise<Child> {
  const redis = await launchRedis()
  let app: Child
  try {
    app = await startChild(new URL('./app-server.js', import.meta.url), [upstreamBase, 'warn', `redis=${redis.url}`], execArgv)
  } catch (err) {
    await redis.cleanup()
    throw err
  }
  return {
    ...app,
    stop: async () => {
      await app.stop()
      await redis.cleanup()
    }
  }
}
