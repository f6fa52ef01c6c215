import { Redis } from 'ioredis'
import { RedisStore } from '../../../src/store/redis-store.js'
import { startRedis } from '../../support/redis-server.js'
import { registerStoreContract } from './store-contract.js'
import { lifo } from '../../helpers/lifo.js'

registerStoreContract('redis store', {
  async open (t) {
    const cleanup = lifo(t)
    const server = await startRedis(cleanup)
    const options = { url: server.url, prefix: 'contract:', instance: 'contract-a' }
    let current = await RedisStore.open(options)
    cleanup.after(() => current.close())
    return {
      store: current,
      async reopen () {
        await current.close()
        current = await RedisStore.open({ ...options, instance: 'contract-b' })
        return current
      },
      async corruptRequests () {
        const raw = new Redis(server.url)
        await raw.hset('contract:account:id1', 'requests', 'many')
        raw.disconnect()
      }
    }
  }
})
