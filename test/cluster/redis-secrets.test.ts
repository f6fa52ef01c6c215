/*
 * The Redis password and the tokens never reach the logs of a shared pool, not even while Redis is
 * away and the instances report their trouble.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { responsesBody } from '../helpers/stack.js'
import { eventually, startCluster } from '../helpers/cluster.js'

const PASSWORD = 'redis-pass-never-logged-42'

test('no log line of a shared pool holds the Redis password or a token, through a Redis outage', async (t) => {
  const { nodes, addAccount, redis, fake } = await startCluster(t, { redis: { password: PASSWORD }, settings: { redisPassword: PASSWORD } })
  const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]]
  await addAccount(a, { email: 'one@example.com' })
  await eventually('b has it', () => b.app.pool.list().length === 1)
  const turn = async (): Promise<number> => (await fetch(`${b.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(responsesBody('x')) })).status
  assert.equal(await turn(), 200)
  await redis.stop()
  assert.equal(await turn(), 200)
  await new Promise((resolve) => setTimeout(resolve, 1_200)) // a batched write fails and is reported
  await redis.start()
  await eventually('both reconnect and write', () => nodes.every((node) => node.logs.some((line) => /Redis connection trouble/.test(String(line.msg)))), 3_000)
  const secrets = [PASSWORD, ...fake.allIssuedSecrets()]
  for (const node of nodes) {
    for (const line of node.logs) {
      const text = JSON.stringify(line)
      for (const secret of secrets) assert.ok(!text.includes(secret), `a log line of ${node.name} holds a secret: ${text.slice(0, 200)}`)
    }
  }
})
