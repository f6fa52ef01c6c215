import type { Command } from 'commander'
import { AccountPool, PoolError, type ImportInput, type ImportOutcome } from '../pool/account-pool.js'
import { ambiguousMessage, matchAccount } from '../pool/account-match.js'
import { toAccountView, type AccountView } from '../pool/account-view.js'
import { loadConfig } from '../config.js'
import { OAuthClient, RefreshError } from '../tokens/oauth-client.js'
import { StoreInUseError, TokenStore } from '../store/file-store.js'
import { EgressDispatchers } from '../egress/egress-proxy.js'
import { parseProxyUrl, ProxySettingError } from '../egress/proxy-url.js'
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
  /** Ends a rest (cooldown or disable) now. */
  enable: (id: string) => Promise<AccountView>
  /** Makes the account the one serving now. */
  select: (id: string) => Promise<AccountView>
  /** Sets the account's egress proxy (null: direct). */
  setProxy: (id: string, proxy: string | null) => Promise<AccountView>
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
  // Reading needs no lock (the server writes atomically) and writes nothing back. No log: a command
  // reports what happened in its own words, and a failed write through `persist-error` below.
  // A local refresh goes through the account's proxy too, as the server's would.
  const egress = new EgressDispatchers({ headersTimeout: 60_000, bodyTimeout: 60_000 })
  const pool = await AccountPool.create({
    store: access === 'write' ? store : { load: async () => await store.load(), save: async () => {}, flush: async () => {} },
    oauth: new OAuthClient(config.issuer, (proxy) => egress.fetchVia(proxy)),
    cooldownMs: config.cooldownMs,
    keepAliveEveryMs: 0 // a command runs for a moment: no background refreshes
  }).catch(async (err: unknown) => {
    await store.close()
    throw err
  })
  return localTarget(pool, store, config.authsDir, egress)
}

function remoteTarget (server: ServerClient): AccountsTarget {
  return {
    where: server.base,
    list: async () => await server.listAccounts(),
    importTokens: async (input) => await server.importTokens({
      tokens: { id_token: input.idToken, access_token: input.accessToken, refresh_token: input.refreshToken, account_id: input.accountId ?? null },
      last_refresh: input.lastRefreshAt == null ? null : new Date(input.lastRefreshAt).toISOString(),
      ...(input.proxy === undefined ? {} : { proxy: input.proxy }),
      ...(input.force === true ? { force: true } : {})
    }),
    remove: async (id) => { await server.removeAccount(id) },
    refresh: async (id) => await server.accountAction(id, 'refresh'),
    enable: async (id) => await server.accountAction(id, 'enable'),
    select: async (id) => await server.accountAction(id, 'select'),
    setProxy: async (id, proxy) => await server.updateAccount(id, { proxy }),
    close: async () => {}
  }
}

function localTarget (pool: AccountPool, store: TokenStore, dir: string, egress: EgressDispatchers): AccountsTarget {
  const view = (id: string): AccountView => toAccountView(pool.get(id)!, pool.now(), pool.currentId())
  let writeFailure: unknown = null
  pool.on('persist-error', (err: unknown) => { writeFailure = err })
  return {
    where: dir,
    list: async () => pool.list().map((account) => view(account.id)),
    importTokens: async (input) => {
      const { account, created, outcome } = await pool.importTokens({ ...input, ...(input.proxy == null ? {} : { proxy: checkedProxy(input.proxy) }) })
      return { view: view(account.id), created, outcome }
    },
    remove: async (id) => {
      if (!await pool.remove(id)) throw new UserError(`no account ${id} in ${dir}`)
    },
    refresh: async (id) => {
      try {
        await pool.forceRefresh(id)
      } catch (err) {
        throw new UserError(refreshFailure(view(id), err))
      }
      return view(id)
    },
    enable: async (id) => {
      await pool.enable(id)
      return view(id)
    },
    select: async (id) => {
      try {
        await pool.select(id)
      } catch (err) {
        if (err instanceof PoolError) throw new UserError(`cannot make ${id} the current account: ${err.message}`)
        throw err
      }
      return view(id)
    },
    setProxy: async (id, proxy) => {
      await pool.setProxy(id, proxy === null ? null : checkedProxy(proxy))
      return view(id)
    },
    close: async () => {
      await pool.close()
      await store.close()
      await egress.close()
      if (writeFailure !== null) {
        const reason = (writeFailure as NodeJS.ErrnoException).code ?? (writeFailure as Error).message
        throw new UserError(`could not save the accounts in ${dir} (${reason}): the change is not on disk`)
      }
    }
  }
}

/** The proxy as the pool keeps it, or a UserError saying what is wrong with it (never repeating a password). */
function checkedProxy (proxy: string): string {
  try {
    return parseProxyUrl(proxy)
  } catch (err) {
    if (err instanceof ProxySettingError) throw new UserError(err.message)
    throw err
  }
}

/** One line for a refresh that did not work: what it means for the account and what to do. */
function refreshFailure (view: AccountView, err: unknown): string {
  const who = view.email ?? view.id
  if (err instanceof RefreshError && err.permanent) {
    return `${who} needs a new sign-in: the issuer refused its refresh token${err.code === null ? '' : ` (${err.code})`}; sign in again with codex-eq login`
  }
  return `could not refresh ${who}: ${(err as Error).message}; its tokens are unchanged, try again later`
}

/** Finds one account by its id, its email or its ChatGPT account id. */
export function findAccount (views: readonly AccountView[], key: string): AccountView {
  const match = matchAccount(views, key)
  if (match.kind === 'one') return match.view
  if (match.kind === 'many') throw new UserError(ambiguousMessage(key, match.views))
  throw new UserError(`no account "${key}"; see codex-eq accounts list`)
}

/** One account in one line: id, email and plan. */
export function describeAccount (view: AccountView): string {
  return `${view.id}: ${view.email ?? '(no email)'} (${view.plan ?? 'plan unknown'})`
}
