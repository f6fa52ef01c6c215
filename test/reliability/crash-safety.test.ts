/**
 * kill -9 during bursts of token refreshes, several times over, against the real server process.
 *
 * Each round freezes the process (SIGSTOP) at a random moment of a burst, compares what is on disk
 * with what the fake issuer had handed out at that moment, then kills it (SIGKILL: no code runs
 * between the two signals, so this is a kill -9 at that moment) and starts it again at once.
 *
 * Refresh tokens are single use and rotate, so a rotation whose answer was still between the issuer
 * and the disk when the process died is lost by nature (the new token existed only in flight or in
 * memory). The test tells these apart from real losses: an account whose newest token was already
 * on disk must keep working; an account that lost its last rotation must have on disk exactly the
 * token that rotation consumed, and the server must never have reported that rotation as done.
 */
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { maskToken } from '../../src/secrets.js'
import { TOKENS_FILE, type StoreData } from '../../src/store/file-store.js'
import { AUTH_CLAIM, decodeJwtPayload, type FakeAccount, type FakeOpenAI } from '../fakes/index.js'
import { responsesBody } from '../helpers/stack.js'
import { fakesForProcess, importTokens, spawnServer, type ServerProcess } from './server-process.js'

const ACCOUNTS = 4
const ROUNDS = 6

interface Tracked { fake: FakeAccount, id: string }

/** The refresh tokens the fake minted for each ChatGPT account, oldest first. */
function refreshChains (fake: FakeOpenAI): Map<string, string[]> {
  const secrets = fake.allIssuedSecrets()
  const chains = new Map<string, string[]>()
  // The fake records every mint as id_token, access_token, refresh_token.
  for (let i = 0; i + 2 < secrets.length; i += 3) {
    const accountId = String(decodeJwtPayload(secrets[i]!)[AUTH_CLAIM].chatgpt_account_id)
    const chain = chains.get(accountId) ?? []
    chain.push(secrets[i + 2]!)
    chains.set(accountId, chain)
  }
  return chains
}

/** Refreshes one account over and over, with short random pauses, until stopped; records what the server confirmed. */
async function refreshLoop (url: string, id: string, confirmed: string[], stop: AbortSignal): Promise<void> {
  while (!stop.aborted) {
    try {
      const response = await fetch(`${url}/accounts/${id}/refresh`, { method: 'POST', signal: stop })
      const view = await response.json() as { token: string }
      if (response.status === 200) confirmed.push(view.token)
    } catch {
      return // the process is gone
    }
    await sleep(Math.random() * 30)
  }
}

async function turnLoop (url: string, stop: AbortSignal): Promise<void> {
  while (!stop.aborted) {
    try {
      const response = await fetch(`${url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(responsesBody('burst')), signal: stop })
      await response.text()
    } catch {
      return
    }
  }
}

async function servedBy (server: ServerProcess, account: Tracked): Promise<void> {
  const select = await fetch(`${server.url}/accounts/${account.id}/select`, { method: 'POST' })
  assert.equal(select.status, 200, await select.text())
  const response = await fetch(`${server.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(responsesBody('after the crash', { prompt_cache_key: randomUUID() })) })
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('x-codex-eq-account'), account.id)
  assert.match(await response.text(), new RegExp(`served by ${account.fake.email.replace(/[.]/g, '\\.')}: after the crash`))
}

test('kill -9 during refresh bursts: the file stays valid, a .bak holds the last good state, no stored refresh token is lost', async (t) => {
  const { fake, authsDir, env } = await fakesForProcess(t)
  const tokensPath = join(authsDir, TOKENS_FILE)

  let server = await spawnServer(t, { env })
  const accounts: Tracked[] = []
  for (let i = 0; i < ACCOUNTS; i++) {
    const account = fake.addAccount({ email: `crash${i}@example.com` })
    accounts.push({ fake: account, id: await importTokens(server.url, account.tokens) })
  }

  let lostInFlight = new Set<string>()
  let settledChecked = 0
  let inFlightSeen = 0
  for (let round = 0; round <= ROUNDS; round++) {
    if (round > 0) {
      // Started again right after the kill: the dead process's lock must not keep it out.
      server = await spawnServer(t, { env })
      const leftovers = (await readdir(authsDir)).filter((name) => !['codex_tokens.json', 'codex_tokens.json.bak', '.codex-equilibrium.lock', '.codex-equilibrium.lock.owner'].includes(name))
      assert.deepEqual(leftovers, [], 'no temp files of the killed process are left behind')
      for (const account of accounts) {
        const refresh = await fetch(`${server.url}/accounts/${account.id}/refresh`, { method: 'POST' })
        const body = await refresh.text()
        if (lostInFlight.has(account.id)) {
          assert.equal(refresh.status, 409, body)
          assert.match(body, /refresh_token_reused/)
          await importTokens(server.url, fake.mintTokens(account.fake.accountId)) // a fresh login, as a user would
        } else {
          assert.equal(refresh.status, 200, `account ${account.id} lost its refresh token: ${body}`)
          settledChecked++
        }
        await servedBy(server, account)
      }
    }
    if (round === ROUNDS) break

    const stop = new AbortController()
    const confirmed = new Map(accounts.map((account) => [account.id, [] as string[]]))
    const loops = [
      ...accounts.map((account) => refreshLoop(server.url, account.id, confirmed.get(account.id)!, stop.signal)),
      turnLoop(server.url, stop.signal)
    ]
    await sleep(40 + Math.random() * 400)
    process.kill(server.pid, 'SIGSTOP')
    await sleep(150) // lets the fake finish answering requests that had reached it
    const text = await readFile(tokensPath, 'utf8')
    const backupText = await readFile(`${tokensPath}.bak`, 'utf8')
    const chains = refreshChains(fake)
    process.kill(server.pid, 'SIGKILL')
    assert.deepEqual(await server.exited, { code: null, signal: 'SIGKILL' })
    stop.abort()
    await Promise.all(loops)

    const onDisk = JSON.parse(text) as StoreData
    const backup = JSON.parse(backupText) as StoreData
    assert.equal(onDisk.accounts.length, ACCOUNTS)
    // The .bak is the state before the last write: in the first round that may predate the last import.
    if (round > 0) assert.equal(backup.accounts.length, ACCOUNTS, 'the .bak holds every account')
    lostInFlight = new Set()
    for (const account of accounts) {
      const chain = chains.get(account.fake.accountId)!
      const stored = onDisk.accounts.find((entry) => entry.id === account.id)!.tokens.refreshToken
      const position = chain.indexOf(stored)
      const backedUp = backup.accounts.find((entry) => entry.id === account.id)
      if (backedUp !== undefined) {
        const backed = chain.indexOf(backedUp.tokens.refreshToken)
        assert.ok(backed !== -1 && backed <= position, 'the .bak holds an earlier (or the same) good state')
      }
      if (position === chain.length - 1) continue
      // The newest rotation had not reached the disk: the file must hold the token it consumed, and
      // the server must not have confirmed it to anyone.
      assert.equal(position, chain.length - 2, `account ${account.id}: a refresh token that had been stored was lost (on disk: #${position + 1} of ${chain.length})`)
      const newestAccess = account.fake.tokens.access_token
      assert.ok(!confirmed.get(account.id)!.includes(maskToken(newestAccess)), 'a refresh was confirmed before its tokens were on disk')
      lostInFlight.add(account.id)
      inFlightSeen++
    }
  }
  t.diagnostic(`${ROUNDS} kills; ${settledChecked} stored refresh tokens still worked afterwards; ${inFlightSeen} rotations were in flight at the kill`)
  assert.ok(settledChecked >= ROUNDS, 'most kills must leave accounts whose newest token was on disk, or the test shows nothing')

  process.kill(server.pid, 'SIGTERM')
  assert.deepEqual(await server.exited, { code: 0, signal: null })
})
