import { resolve } from 'node:path'
import type { Command } from 'commander'
import { ConfigError, loadConfig } from '../config.js'
import { TokenStore } from '../store/file-store.js'
import type { PoolStore } from '../store/port.js'
import { shownUrl } from '../store/redis-connect.js'
import { RedisStore } from '../store/redis-store.js'
import { addSettingOptions } from './serve.js'
import { UserError, exitWith } from './user-error.js'

interface CopyFlags extends Record<string, unknown> {
  from: string
  to: string
}

interface OpenedEnd {
  store: PoolStore
  shown: string
  close: () => Promise<void>
}

function isRedis (where: string): boolean {
  return /^rediss?:\/\//i.test(where)
}

/** One end of the copy: an auths dir (its lock taken: no server may be using it) or a Redis URL. */
async function openEnd (where: string, settings: { redisPrefix: string, redisPassword: string | null }): Promise<OpenedEnd> {
  if (isRedis(where)) {
    const store = await RedisStore.open({ url: where, password: settings.redisPassword, prefix: settings.redisPrefix, instance: `store-copy-${process.pid}`, stopWaitMs: 2_000 })
    return { store, shown: `${shownUrl(where)} (prefix ${settings.redisPrefix})`, close: async () => { await store.close() } }
  }
  const dir = resolve(where)
  const store = new TokenStore(dir)
  await store.open()
  return { store, shown: dir, close: async () => { await store.close() } }
}

export function registerStoreCopy (program: Command): void {
  const store = program
    .command('store')
    .summary('move the pool between an auths dir and Redis')
    .description('Commands on the pool\'s storage: the token file in an auths dir, or a Redis shared by several instances.')
  const copy = store
    .command('copy')
    .description('Copy the whole pool (accounts, tokens, rests, the sticky choice) from one store to another. ' +
      'The target must be empty: nothing is ever overwritten. Stop the servers using the source first: ' +
      'refresh tokens rotate, and a copy taken while one rotates would hold a spent one.')
    .requiredOption('--from <dir|url>', 'an auths dir, or a redis:// (rediss://) URL')
    .requiredOption('--to <dir|url>', 'an auths dir, or a redis:// (rediss://) URL')
  addSettingOptions(copy, ['redisPrefix', 'redisPassword'])
  copy.addHelpText('after', '\nExamples:\n  codex-eq store copy --from ./auths --to redis://127.0.0.1:6379/0\n  codex-eq store copy --from redis://127.0.0.1:6379/0 --to /var/lib/codex-equilibrium')
  copy.action(async (flags: CopyFlags) => {
    try {
      const settings = loadConfig(flags, process.env, ['redisPrefix', 'redisPassword'])
      for (const [name, where] of [['--from', flags.from], ['--to', flags.to]] as const) {
        if (where.trim() === '') throw new ConfigError(name, 'must not be empty')
      }
      const source = await openEnd(flags.from, settings)
      try {
        const data = await source.store.load()
        const target = await openEnd(flags.to, settings)
        try {
          const held = await target.store.load()
          if (held.accounts.length > 0) throw new UserError(`refusing to copy: ${target.shown} already holds ${held.accounts.length} account(s); copy only into an empty store`)
          await target.store.save(data)
          await target.store.flush()
          process.stdout.write(`copied ${data.accounts.length} account(s) from ${source.shown} to ${target.shown}\n`)
        } finally {
          await target.close()
        }
      } finally {
        await source.close()
      }
    } catch (err) {
      exitWith(err)
    }
  })
}
