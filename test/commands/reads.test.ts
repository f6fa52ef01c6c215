import { test } from 'node:test'
import assert from 'node:assert/strict'
import { postResponses, startStack, type Stack } from '../helpers/stack.js'
import { runCli } from './run-cli.js'

const ADMIN = 'admin-token-for-reads-tests'
/** A moment as the CLI shows it (`localClock`): the time today, with the date before it on another day (a test run at midnight). */
const CLOCK = '(\\d{4}-\\d\\d-\\d\\d )?\\d\\d:\\d\\d'
/** The start of an hour, as the CLI shows it. */
const HOUR = '(\\d{4}-\\d\\d-\\d\\d )?\\d\\d:00'

/** What the API answers to GET `path`, with the admin token. */
async function answer (stack: Stack, path: string): Promise<unknown> {
  const response = await fetch(`${stack.url}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
  assert.equal(response.status, 200, path)
  return await response.json()
}

/** The lines of a table the CLI printed, after checking it ran well. */
function lines (run: { code: number | null, stdout: string, stderr: string }): string[] {
  assert.equal(run.code, 0, run.stderr)
  return run.stdout.trimEnd().split('\n')
}

test('usage, requests and audit show, after a request through the pool, what the server saw; --json is the API\'s answer', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  const account = await stack.addAccount({ email: 'one@example.com' })
  await (await postResponses(stack)).text()
  const server = ['--server', stack.url, '--admin-token', ADMIN]

  const usage = lines(await runCli(t, ['usage', ...server]))
  assert.match(usage[0]!, /^ACCOUNT +DAY +REQUESTS +INPUT +CACHED +OUTPUT +REASONING +TOTAL$/)
  assert.match(usage[1]!, new RegExp(`^${account.id} +\\d{4}-\\d\\d-\\d\\d +1 +\\d+ +\\d+ +\\d+ +\\d+ +[1-9]\\d*$`))
  assert.match(usage[2]!, /^all +1 +\d+/)
  const byModel = lines(await runCli(t, ['usage', '--by', 'model', '--bucket', 'hour', '--from', '1d', ...server]))
  assert.match(byModel[0]!, /^MODEL +HOUR +REQUESTS/)
  assert.match(byModel[1]!, new RegExp(`^gpt-\\S+ +${HOUR} +1 `))
  const byKey = lines(await runCli(t, ['usage', 'list', '--by', 'key', ...server]))
  assert.match(byKey[1]!, /^none +\d{4}-/)
  const range = ['--from', new Date(Date.now() - 3_600_000).toISOString(), '--to', new Date(Date.now() + 3_600_000).toISOString()]
  const query = `from=${encodeURIComponent(range[1]!)}&to=${encodeURIComponent(range[3]!)}`
  assert.deepEqual(JSON.parse((await runCli(t, ['usage', '--by', 'key', '--bucket', 'hour', ...range, '--json', ...server])).stdout), await answer(stack, `/usage?by=key&bucket=hour&${query}`))
  const empty = await runCli(t, ['usage', '--from', '2020-01-01', '--to', '2020-01-02', ...server])
  assert.match(empty.stdout, /^no usage on http:\/\/127\.0\.0\.1:\d+ from /)
  const badDate = await runCli(t, ['usage', '--from', 'yesterday', ...server])
  assert.equal(badDate.code, 1)
  assert.equal(badDate.stderr, 'codex-eq: --from "yesterday" is neither a date (2026-11-01), epoch milliseconds nor a duration back from now (24h, 7d)\n')
  const backwards = await runCli(t, ['usage', '--from', '2026-01-02', '--to', '2026-01-01', ...server])
  assert.equal(backwards.code, 1)
  assert.match(backwards.stderr, /^codex-eq: the server refused GET \/usage\?from=2026-01-02&to=2026-01-01: from must be before to\n$/)
  const badGroup = await runCli(t, ['usage', '--by', 'plan', ...server])
  assert.equal(badGroup.code, 1)
  assert.match(badGroup.stderr, /--by <group>' argument 'plan' is invalid/)

  const quota = lines(await runCli(t, ['usage', 'quota', ...server]))
  assert.match(quota[0]!, /^ACCOUNT +SAMPLES +FIRST +LAST +PRIMARY +SECONDARY$/)
  assert.match(quota[1]!, new RegExp(`^${account.id} +1 +${CLOCK} +${CLOCK} +\\d+% \\(peak \\d+%\\) +`))
  assert.deepEqual(JSON.parse((await runCli(t, ['usage', 'quota', ...range, '--json', ...server])).stdout), await answer(stack, `/usage/quota?${query}`))

  const requests = lines(await runCli(t, ['requests', ...server]))
  assert.match(requests[0]!, /^TIME +KEY +ACCOUNT +MODEL +STATUS +ATTEMPTS +TOKENS +MS$/)
  assert.match(requests[1]!, new RegExp(`^${CLOCK} +none +${account.id} +gpt-\\S+ +200 +1 +[1-9]\\d* +\\d+$`))
  await (await postResponses(stack)).text()
  assert.equal(lines(await runCli(t, ['requests', '--limit', '1', ...server])).length, 2)
  assert.deepEqual(JSON.parse((await runCli(t, ['requests', '--json', ...server])).stdout), await answer(stack, '/requests/recent'))
  const badLimit = await runCli(t, ['requests', '--limit', '0', ...server])
  assert.equal(badLimit.code, 1)
  assert.equal(badLimit.stderr, 'codex-eq: --limit "0" is not a number from 1 to 1000\n')
  const activity = lines(await runCli(t, ['requests', 'activity', ...server]))
  assert.match(activity[0]!, /^HOUR +REQUESTS +FAILOVERS$/)
  assert.match(activity[1]!, new RegExp(`^${HOUR} +2xx 2 +-$`))
  assert.deepEqual(JSON.parse((await runCli(t, ['requests', 'activity', '--json', ...server])).stdout), await answer(stack, '/requests/activity'))

  const audit = lines(await runCli(t, ['audit', ...server]))
  assert.match(audit[0]!, /^TIME +BY +ACTION +TARGET +DETAILS$/)
  assert.match(audit[1]!, new RegExp(`^${CLOCK} +admin token 127\\.0\\.0\\.1 +account_import +one@example\\.com +created=true$`))
  assert.deepEqual(JSON.parse((await runCli(t, ['audit', '--limit', '5', '--json', ...server])).stdout), await answer(stack, '/audit?limit=5'))
})

test('the read commands need the admin token a server has, and say so in one line; an unreachable server too', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN } })
  for (const args of [['usage'], ['usage', 'quota'], ['requests'], ['requests', 'activity'], ['audit']]) {
    const without = await runCli(t, [...args, '--server', stack.url])
    assert.equal(without.code, 1, args.join(' '))
    assert.equal(without.stderr, `codex-eq: the server at ${stack.url} needs its admin token: pass --admin-token or set CODEX_EQ_ADMIN_TOKEN\n`, args.join(' '))
    const fromEnv = await runCli(t, [...args, '--server', stack.url], { CODEX_EQ_ADMIN_TOKEN: ADMIN })
    assert.equal(fromEnv.code, 0, `${args.join(' ')}: ${fromEnv.stderr}`)
  }
  const none = await runCli(t, ['requests', '--server', stack.url, '--admin-token', ADMIN])
  assert.equal(none.stdout, `no requests on ${stack.url} since it started\n`)
  const wrong = await runCli(t, ['audit', '--server', stack.url, '--admin-token', 'not-the-admin-token'])
  assert.equal(wrong.code, 1)
  assert.match(wrong.stderr, /refused the admin token \(wrong token\)/)
  const url = stack.url
  await stack.app.close()
  const gone = await runCli(t, ['usage', '--server', url])
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, /^codex-eq: cannot reach the codex-eq server at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); is it running/)
})

test('the read commands\' --help explains them, with examples', async (t) => {
  const expectations: Array<[string[], RegExp[]]> = [
    [['--help'], [/^ {2}usage\b/m, /^ {2}requests\b/m, /^ {2}audit\b/m]],
    [['usage', '--help'], [/list/, /quota/, /Examples:/]],
    [['usage', 'list', '--help'], [/--by <group>/, /"account", "key", "model"/, /--bucket <size>/, /--from <when>/, /--to <when>/, /--json/, /--server <url>/, /--admin-token/]],
    [['usage', 'quota', '--help'], [/--from <when>/, /--json/, /--server <url>/]],
    [['requests', '--help'], [/list/, /activity/, /Examples:/]],
    [['requests', 'list', '--help'], [/--limit <n>/, /--json/, /--server <url>/]],
    [['audit', '--help'], [/--limit <n>/, /--json/, /--server <url>/, /--admin-token/, /Examples:/]]
  ]
  const runs = await Promise.all(expectations.map(async ([args]) => await runCli(t, args)))
  for (const [index, [args, patterns]] of expectations.entries()) {
    const run = runs[index]!
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`)
    for (const pattern of patterns) assert.match(run.stdout, pattern, args.join(' '))
  }
})
