import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeOpenAI } from '../fakes/index.js'
import { startStack, tempDir, type Stack } from '../helpers/stack.js'
import { authorize, closedPort, closedSoon, occupyPort, signIn } from '../login/browser.js'
import { runCli, startCli } from './run-cli.js'

const ADMIN = 'admin-token-for-cli-tests'
const AUTHORIZE_URL = /^ {2}(http:\/\/\S+\/oauth\/authorize\?\S+)$/m

async function serverAccounts (stack: Stack): Promise<Array<{ id: string, email: string }>> {
  const answer = await fetch(`${stack.url}/accounts`, { headers: stack.config.adminToken === null ? {} : { authorization: `Bearer ${stack.config.adminToken}` } })
  return await answer.json() as Array<{ id: string, email: string }>
}

test('login --server: signs in on this machine and adds the account to a running server', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  const person = stack.fake.addAccount({ email: 'laptop@example.com', plan: 'plus' })
  stack.fake.nextLogin = person.accountId
  const cli = startCli(t, ['login', '--server', stack.url, '--no-open', '--issuer', stack.fake.issuerUrl, '--callback-port', '0'], { CODEX_EQ_ADMIN_TOKEN: ADMIN })
  const [, authorizeUrl] = await cli.waitForStderr(AUTHORIZE_URL)
  const redirectUri = new URL(authorizeUrl!).searchParams.get('redirect_uri')!
  assert.match(redirectUri, /^http:\/\/localhost:\d+\/auth\/callback$/)

  const page = await signIn(authorizeUrl!)
  assert.equal(page.status, 200)
  assert.match(page.html, /laptop@example\.com/)
  assert.ok(page.html.includes(`href="${stack.url}/"`), 'the page leads to the server\'s dashboard')

  const run = await cli.done
  assert.equal(run.code, 0, run.stderr)
  const lines = run.stdout.split('\n').filter((line) => line !== '')
  assert.equal(lines.length, 1, 'one line naming the account')
  const [account] = await serverAccounts(stack)
  assert.equal(account?.email, 'laptop@example.com')
  assert.equal(lines[0], `added account ${account.id}: laptop@example.com (plus) in ${stack.url}`)
  await closedSoon(Number(new URL(redirectUri).port))
  for (const secret of stack.fake.allIssuedSecrets()) assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), 'no token printed')
})

test('login --device --server: the printed code, typed at the issuer, adds the account', async (t) => {
  const stack = await startStack(t)
  const person = stack.fake.addAccount({ email: 'phone@example.com' })
  const cli = startCli(t, ['login', '--device', '--server', stack.url, '--issuer', stack.fake.issuerUrl])
  const [, verificationUrl, userCode] = await cli.waitForStderr(/open (\S+) on any device.*\n\n {2}(\S+)\n/)
  assert.equal(verificationUrl, `${stack.fake.issuerUrl}/codex/device`)
  stack.fake.issuer.approveDevice(userCode!, person.accountId)
  const run = await cli.done
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, /^added account \w+: phone@example\.com \(plus\) in http:/)
  assert.deepEqual((await serverAccounts(stack)).map((a) => a.email), ['phone@example.com'])
})

test('login without --server adds to the local auths dir; with a server on that dir it refuses and points to --server', async (t) => {
  const fake = await startFakeOpenAI()
  t.after(() => fake.close())
  const dir = await tempDir(t)
  const cli = startCli(t, ['login', '--no-open', '--auths-dir', dir, '--issuer', fake.issuerUrl, '--callback-port', '0'])
  const [, authorizeUrl] = await cli.waitForStderr(AUTHORIZE_URL)
  const page = await signIn(authorizeUrl!)
  assert.equal(page.status, 200)
  assert.match(page.html, /close this window/, 'no dashboard to go back to')
  const run = await cli.done
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, new RegExp(`^added account \\w+: .+ in ${dir}\\n$`))
  const list = await runCli(t, ['accounts', 'list', '--json', '--auths-dir', dir])
  assert.equal((JSON.parse(list.stdout) as unknown[]).length, 1)

  const stack = await startStack(t)
  const refused = await runCli(t, ['login', '--no-open', '--auths-dir', stack.authsDir, '--issuer', stack.fake.issuerUrl, '--callback-port', '0'])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /in use by a running codex-eq server.*--server/)
  assert.doesNotMatch(refused.stderr, /oauth\/authorize/, 'it refused before any sign-in')
})

test('login: a refused consent exits 1 and adds nothing', async (t) => {
  const stack = await startStack(t)
  stack.fake.consent = 'deny'
  const cli = startCli(t, ['login', '--server', stack.url, '--no-open', '--issuer', stack.fake.issuerUrl, '--callback-port', '0'])
  const [, authorizeUrl] = await cli.waitForStderr(AUTHORIZE_URL)
  const page = await signIn(authorizeUrl!)
  assert.equal(page.status, 403)
  const run = await cli.done
  assert.equal(run.code, 1)
  assert.equal(run.stdout, '')
  assert.match(run.stderr, /sign-in failed: the sign-in was refused at the issuer \(access_denied/)
  assert.deepEqual(await serverAccounts(stack), [])
})

test('login: the address the browser ended on, pasted on stdin, finishes the sign-in', async (t) => {
  const stack = await startStack(t)
  const cli = startCli(t, ['login', '--server', stack.url, '--no-open', '--issuer', stack.fake.issuerUrl, '--callback-port', '0'])
  const [, authorizeUrl] = await cli.waitForStderr(AUTHORIZE_URL)
  const callbackUrl = await authorize(authorizeUrl!)
  cli.write('http://localhost:1455/auth/callback?code=nope&state=wrong\n')
  await cli.waitForStderr(/unknown or already finished/)
  cli.write(`${callbackUrl}\n`)
  const run = await cli.done
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, /^added account/)
  assert.equal((await serverAccounts(stack)).length, 1)
})

test('login: an unreachable server or a wrong admin token fails at once with a clear message', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  const notCodexEq = `http://127.0.0.1:${await occupyPort(t)}`
  const nobody = `http://127.0.0.1:${await closedPort()}`
  const runs = await Promise.all([
    runCli(t, ['login', '--server', nobody, '--no-open', '--issuer', stack.fake.issuerUrl]),
    runCli(t, ['login', '--server', stack.url, '--no-open', '--issuer', stack.fake.issuerUrl]),
    runCli(t, ['login', '--server', stack.url, '--admin-token', 'not-the-right-token', '--no-open', '--issuer', stack.fake.issuerUrl]),
    runCli(t, ['login', '--server', notCodexEq, '--no-open', '--issuer', stack.fake.issuerUrl]),
    runCli(t, ['login', '--server', 'ftp://example.com', '--no-open'])
  ])
  assert.equal(runs[0]!.stderr, `codex-eq: cannot reach the codex-eq server at ${nobody} (ECONNREFUSED); is it running, and is the URL right?\n`)
  assert.match(runs[1]!.stderr, /needs its admin token: pass --admin-token or set CODEX_EQ_ADMIN_TOKEN/)
  assert.match(runs[2]!.stderr, /refused the admin token/)
  assert.match(runs[3]!.stderr, /answered GET \/accounts with HTTP 404 and no JSON; is it a codex-eq server\?/)
  assert.match(runs[4]!.stderr, /must be an http:\/\/ or https:\/\/ URL/)
  for (const run of runs) {
    assert.equal(run.code, 1, run.stderr)
    assert.equal(run.stderr.split('\n').filter((line) => line !== '').length, 1, `one line: ${run.stderr}`)
  }
})

test('login: a busy callback port exits 1 with a clear message', async (t) => {
  const stack = await startStack(t)
  const port = await occupyPort(t)
  const run = await runCli(t, ['login', '--server', stack.url, '--no-open', '--issuer', stack.fake.issuerUrl, '--callback-port', String(port)])
  assert.equal(run.code, 1)
  assert.match(run.stderr, new RegExp(`^codex-eq: the callback port ${port} is in use by another program.*GET http://localhost:${port}/cancel`))
})
