import type { Command } from 'commander'
import { AccountPool, type ImportInput, type ImportOutcome, type PoolLogger } from '../account-pool.js'
import { toAccountView, type AccountView } from '../account-view.js'
import { loadConfig } from '../config.js'
import { OAuthClient } from '../oauth-client.js'
import { StoreInUseError, TokenStore } from '../token-store.js'
import { ServerClient, parseServerUrl } from './server-client.js'
import { addSettingOptions } from './serve.js'
import { UserError } from './user-error.js'

export interface ImportedAccount {
  view: AccountView
  created: boolean
  outcome: ImportOutcome
}

/** Where a command's accounts live: a running server (`--server`) or the local auths dir. */
export interface AccountsTarget {
  /** For messages: the server URL or the auths dir. */
  readonly where: string
  list: () => Promise<AccountView[]>
  importTokens: (input: ImportInput) => Promise<ImportedAccount>
  remove: (id: string) => Promise<void>
  refresh: (id: string) => Promise<AccountView>
  close: () => Promise<void>
}

/** Adds `--server` and the settings a command needs to reach its accounts (admin token, auths dir, …). */
export function addTargetOptions (command: Command, settings: string[] = []): Command {
  command.option('--server <url>', 'use the codex-eq server at this URL (e.g. http://my-server:1456) instead of the local auths dir')
  return addSettingOptions(command, ['adminToken', 'authsDir', ...settings])
}

/**
 * Opens the accounts named by a command's flags. Locally, `write` takes the auths dir's lock, which a
 * running server holds: then the command must go through that server instead.
 */
export async function openTarget (flags: Record<string, unknown>, access: 'read' | 'write'): Promise<AccountsTarget> {
  const config = loadConfig(flags, process.env, ['adminToken', 'authsDir', 'issuer', 'cooldownMs'])
  if (typeof flags.server === 'string') {
    const server = new ServerClient(parseServerUrl(flags.server), config.adminToken)
    await server.listAccounts() // fail now, before a sign-in, if the server cannot be reached or refuses the token
    return remoteTarget(server)
  }
  const store = new TokenStore(config.authsDir)
  if (access === 'write') {
    try {
      await store.open()
    } catch (err) {
      if (!(err instanceof StoreInUseError)) throw err
      throw new UserError(`${config.authsDir} is in use by a running codex-eq server; add or change accounts through it: run this command again with --server <its URL> (e.g. --server http://127.0.0.1:1456)`)
    }
  }
  // Reading needs no lock (the server writes atomically) and writes nothing back.
  const pool = await AccountPool.create({
    store: access === 'write' ? store : { load: async () => await store.load(), save: async () => {}, flush: async () => {} },
    oauth: new OAuthClient(config.issuer),
    cooldownMs: config.cooldownMs,
    log: stderrLog,
    keepAliveEveryMs: 0 // a command runs for a moment: no background refreshes
  }).catch(async (err: unknown) => {
    await store.close()
    throw err
  })
  return localTarget(pool, store, config.authsDir)
}

function remoteTarget (server: ServerClient): AccountsTarget {
  return {
    where: server.base,
    list: async () => await server.listAccounts(),
    importTokens: async (input) => await server.importTokens({
      tokens: { id_token: input.idToken, access_token: input.accessToken, refresh_token: input.refreshToken, account_id: input.accountId ?? null },
      last_refresh: input.lastRefreshAt == null ? null : new Date(input.lastRefreshAt).toISOString(),
      ...(input.force === true ? { force: true } : {})
    }),
    remove: async (id) => { await server.removeAccount(id) },
    refresh: async (id) => await server.refreshAccount(id),
    close: async () => {}
  }
}

function localTarget (pool: AccountPool, store: TokenStore, dir: string): AccountsTarget {
  const view = (id: string): AccountView => toAccountView(pool.get(id)!, pool.now(), pool.currentId())
  return {
    where: dir,
    list: async () => pool.list().map((account) => view(account.id)),
    importTokens: async (input) => {
      const { account, created, outcome } = await pool.importTokens(input)
      return { view: view(account.id), created, outcome }
    },
    remove: async (id) => {
      if (!await pool.remove(id)) throw new UserError(`no account ${id} in ${dir}`)
    },
    refresh: async (id) => {
      try {
        await pool.forceRefresh(id)
      } catch (err) {
        throw new UserError(`refreshing ${id} failed: ${(err as Error).message}`)
      }
      return view(id)
    },
    close: async () => {
      await pool.close()
      await store.close()
    }
  }
}

const stderrLog: PoolLogger = {
  info: () => {},
  warn: (_obj, msg) => { process.stderr.write(`codex-eq: ${msg ?? ''}\n`) },
  error: (_obj, msg) => { process.stderr.write(`codex-eq: ${msg ?? ''}\n`) }
}

/** Finds one account by its id, its email or its ChatGPT account id. */
export function findAccount (views: readonly AccountView[], key: string): AccountView {
  const byId = views.find((view) => view.id === key)
  if (byId !== undefined) return byId
  const matches = views.filter((view) => view.email?.toLowerCase() === key.toLowerCase() || view.account_id === key)
  if (matches.length === 1) return matches[0]!
  if (matches.length > 1) throw new UserError(`"${key}" matches ${matches.length} accounts (${matches.map((view) => view.id).join(', ')}); use the id`)
  throw new UserError(`no account "${key}"; see codex-eq accounts list`)
}

/** One account in one line: id, email and plan. */
export function describeAccount (view: AccountView): string {
  return `${view.id}: ${view.email ?? '(no email)'} (${view.plan ?? 'plan unknown'})`
}
