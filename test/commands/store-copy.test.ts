/*
 * `codex-eq store copy`: the whole pool from an auths dir into Redis and back, never over a store
 * that already holds accounts, never with the Redis password in its output.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { TokenStore } from '../../src/store/file-store.js'
import { RedisStore } from '../../src/store/redis-store.js'
import type { StoreData } from '../../src/store/port.js'
import { account } from '../src/store/store-contract.js'
import { tempDir } from '../helpers/stack.js'
import { lifo } from '../helpers/lifo.js'
import { startRedis } from '../support/redis-server.js'
import { startCli } from './run-cli.js'

const PASSWORD = 'copy-secret-0123456789'

function pool (): StoreData {
  const resting = account(2)
  Object.assign(resting, { disabledUntil: 2_000_000_000_000, disabledKind: 'cooling', disabledReason: 'usage limit', disabledSource: 'body.resets_at' })
  return { version: 1, sticky: 'id2', accounts: [account(1), resting] }
}

test('store copy moves the pool from an auths dir to Redis and back, and refuses a target that is not empty', async (t) => {
  const cleanup = lifo(t)
  const redis = await startRedis(cleanup, { password: PASSWORD })
  const dir = await tempDir(t)
  const from = join(dir, 'auths')
  const file = new TokenStore(from)
  await file.open()
  await file.save(pool())
  await file.close()
  const url = `redis://:${PASSWORD}@127.0.0.1:${redis.port}/0`

  const there = await startCli(t, ['store', 'copy', '--from', from, '--to', url]).done
  assert.equal(there.code, 0, there.stderr)
  assert.match(there.stdout, /copied 2 account\(s\) from .* to redis:\/\/:\*\*\*@127\.0\.0\.1/)
  assert.ok(!there.stdout.includes(PASSWORD) && !there.stderr.includes(PASSWORD), 'the password is never printed')
  const inRedis = await RedisStore.open({ url, prefix: 'codex-eq:', instance: 'check' })
  assert.deepEqual(await inRedis.load(), pool())
  await inRedis.close()

  const again = await startCli(t, ['store', 'copy', '--from', from, '--to', url]).done
  assert.equal(again.code, 1, again.stderr)
  assert.match(again.stderr, /^codex-eq: refusing to copy: .* already holds 2 account\(s\)/)
  assert.equal(again.stderr.trim().split('\n').length, 1)
  assert.ok(!again.stderr.includes(PASSWORD))

  const back = join(dir, 'back')
  const home = await startCli(t, ['store', 'copy', '--from', `redis://127.0.0.1:${redis.port}/0`, '--to', back], { CODEX_EQ_REDIS_PASSWORD: PASSWORD }).done
  assert.equal(home.code, 0, home.stderr)
  const returned = new TokenStore(back)
  await returned.open()
  assert.deepEqual(await returned.load(), pool())
  await returned.close()

  const intoFull = await startCli(t, ['store', 'copy', '--from', from, '--to', back]).done
  assert.equal(intoFull.code, 1, intoFull.stderr)
  assert.match(intoFull.stderr, /refusing to copy/)
})
