import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { codexAuthJson, startFakeOpenAI } from '../fakes/index.js'
import { startHttpProxy } from '../helpers/egress-proxies.js'
import { startStack, tempDir } from '../helpers/stack.js'
import { TOKENS_FILE } from '../../src/store/file-store.js'
import { runCli } from './run-cli.js'

const ADMIN = 'admin-token-for-proxy-tests'

test('import --proxy and accounts proxy set an account\'s proxy locally; show masks the password; a local refresh goes through it', async (t) => {
  const fake = await startFakeOpenAI()
  t.after(() => fake.close())
  const proxy = await startHttpProxy(t, 'carol', 'cli-pass-3141')
  const dir = await tempDir(t)
  const authsDir = join(dir, 'auths')
  const one = fake.addAccount({ email: 'one@example.com' })
  await writeFile(join(dir, 'one.json'), JSON.stringify(codexAuthJson(one.tokens)))

  const imported = await runCli(t, ['import', join(dir, 'one.json'), '--proxy', proxy.url, '--auths-dir', authsDir])
  assert.equal(imported.code, 0, imported.stderr)
  const shown = await runCli(t, ['accounts', 'show', 'one@example.com', '--auths-dir', authsDir])
  assert.equal(shown.code, 0, shown.stderr)
  assert.match(shown.stdout, new RegExp(`^proxy: +http://carol:\\*\\*\\*@127\\.0\\.0\\.1:${new URL(proxy.url).port}$`, 'm'))
  assert.ok(!shown.stdout.includes('cli-pass-3141'))
  assert.ok((await readFile(join(authsDir, TOKENS_FILE), 'utf8')).includes('cli-pass-3141'), 'kept on disk to be used')

  const refreshed = await runCli(t, ['accounts', 'refresh', 'one@example.com', '--auths-dir', authsDir, '--issuer', fake.issuerUrl])
  assert.equal(refreshed.code, 0, refreshed.stderr)
  assert.equal(proxy.carried().filter((r) => r.path === '/oauth/token').length, 1, 'the refresh went through the account\'s proxy')

  const bad = await runCli(t, ['accounts', 'proxy', 'one@example.com', 'ftp://dave:ftp-pass-2718@example.com', '--auths-dir', authsDir])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /proxy must be http:\/\/, https:\/\/ or socks5:\/\//)
  assert.ok(!bad.stderr.includes('ftp-pass-2718'))

  const cleared = await runCli(t, ['accounts', 'proxy', 'one@example.com', 'none', '--auths-dir', authsDir])
  assert.equal(cleared.code, 0, cleared.stderr)
  assert.match(cleared.stdout, /one@example\.com .* connects directly/)
  assert.match((await runCli(t, ['accounts', 'show', 'one@example.com', '--auths-dir', authsDir])).stdout, /^proxy: +none \(direct\)$/m)
})

test('accounts proxy --server sets it through PATCH /accounts/:id', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  const account = await stack.addAccount({ email: 'served@example.com' })
  const env = { CODEX_EQ_ADMIN_TOKEN: ADMIN }
  const set = await runCli(t, ['accounts', 'proxy', 'served@example.com', 'socks5://erin:socks-cli-1618@127.0.0.1:1080', '--server', stack.url], env)
  assert.equal(set.code, 0, set.stderr)
  assert.equal(set.stdout, `account ${account.id}: served@example.com (plus) goes through socks5://erin:***@127.0.0.1:1080\n`)
  const views = await (await fetch(`${stack.url}/accounts`, { headers: { authorization: `Bearer ${ADMIN}` } })).json() as Array<{ proxy: string | null }>
  assert.equal(views[0]!.proxy, 'socks5://erin:***@127.0.0.1:1080')
  const refused = await runCli(t, ['accounts', 'proxy', 'served@example.com', 'not a proxy', '--server', stack.url], env)
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /the server refused PATCH .*: proxy is not a URL/)
})
