/*
 * The README's "Running several instances", run as written: its shell commands (redis-server, the
 * store copy, two `codex-eq serve` with their flags and environment) and its nginx block, with free
 * loopback ports and temp paths put in. A real redis-server, the built CLI as two child processes
 * against the fakes, and a real nginx (Debian's) in front. A machine without nginx or redis-server
 * fails this test: it never skips.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFakeOpenAI } from '../fakes/index.js'
import { responsesBody, tempDir } from '../helpers/stack.js'
import { lifo } from '../helpers/lifo.js'
import { eventually } from '../helpers/cluster.js'
import { importTokens, spawnCli, type ServerProcess } from '../reliability/server-process.js'
import { freePort, startRedis } from '../support/redis-server.js'

const README = fileURLToPath(new URL('../../../README.md', import.meta.url))
const NGINX = '/usr/sbin/nginx'

/** The fenced blocks of one `## ` section of the README, by language. */
async function readmeSection (title: string): Promise<{ sh: string, nginx: string }> {
  const text = await readFile(README, 'utf8')
  const start = text.indexOf(`\n## ${title}\n`)
  assert.ok(start >= 0, `README.md has no section "## ${title}"`)
  const end = text.indexOf('\n## ', start + 1)
  const section = text.slice(start, end < 0 ? undefined : end)
  const block = (lang: string): string => {
    const found = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].filter((match) => match[1] === lang)
    assert.equal(found.length, 1, `README.md "## ${title}" should hold one \`\`\`${lang} block`)
    return found[0]![2]!
  }
  return { sh: block('sh'), nginx: block('nginx') }
}

/**
 * Splits a shell line into words as sh does for these simple ones: a word is a run of bare text,
 * "double-quoted" (with `$NAME` from `vars`) and 'single-quoted' parts; a `# comment` ends the line,
 * a trailing `&` is dropped.
 */
function words (line: string, vars: Record<string, string>): string[] {
  const expand = (text: string): string => text.replaceAll(/\$(\w+)/g, (_all, name: string) => {
    assert.ok(name in vars, `the README uses $${name}, which this test does not know`)
    return vars[name]!
  })
  const out: string[] = []
  for (const [word] of line.matchAll(/(?:[^\s"'#]+|"[^"]*"|'[^']*')+|#.*$/g)) {
    if (word.startsWith('#')) break
    out.push([...word.matchAll(/"([^"]*)"|'([^']*)'|([^"']+)/g)].map((part) => part[2] ?? expand(part[1] ?? part[3]!)).join(''))
  }
  if (out[out.length - 1] === '&') out.pop()
  return out
}

/** The value after `flag` in `args`. */
function flagValue (args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag)
  return at < 0 ? undefined : args[at + 1]
}

test('the README\'s several instances, run as written: redis-server, two instances and nginx in front serve one pool', { timeout: 20_000 }, async (t) => {
  assert.ok(existsSync(NGINX), `nginx is not installed (${NGINX}): install the Debian package nginx (apt-get install nginx); this test runs the README's nginx block in a real one`)
  const { sh, nginx } = await readmeSection('Running several instances')
  const cleanup = lifo(t)
  const dir = await tempDir(t)
  const ports = { redis: await freePort(), a: await freePort(), b: await freePort(), nginx: await freePort() }
  // The README's ports, each replaced by a free one (127.0.0.1 stays: nothing here listens beyond loopback).
  const readmePorts: Record<string, number> = { 6379: ports.redis, 1457: ports.a, 1458: ports.b, 1456: ports.nginx }
  const portsPut = (text: string): string => text.replaceAll(/\b(6379|1456|1457|1458)\b/g, (port) => String(readmePorts[port]))
  const vars: Record<string, string> = { REDIS_PASSWORD: randomBytes(12).toString('hex') }
  const lines = portsPut(sh).split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => words(line.replaceAll('./', `${dir}/`), vars))

  const fake = await startFakeOpenAI()
  cleanup.after(() => fake.close())
  const env: Record<string, string> = { CODEX_EQ_UPSTREAM: fake.backendUrl, CODEX_EQ_ISSUER: fake.issuerUrl, CODEX_EQ_CALLBACK_PORT: '0' }
  const instances: ServerProcess[] = []
  const names: string[] = []
  let redisStarted = false
  for (const line of lines) {
    const [command, ...args] = line
    if (command === 'redis-server') {
      // The test's redis-server helper sets the port, the address and the dir; the README's settings come after its own.
      assert.equal(flagValue(args, '--port'), String(ports.redis))
      assert.equal(flagValue(args, '--bind'), '127.0.0.1')
      const rest = args.filter((_arg, i) => !['--port', '--bind'].includes(args[i] ?? '') && !['--port', '--bind'].includes(args[i - 1] ?? ''))
      await startRedis(cleanup, { port: ports.redis, args: rest, password: flagValue(args, '--requirepass') })
      redisStarted = true
      continue
    }
    if (command === 'export') {
      for (const assignment of args) {
        const at = assignment.indexOf('=')
        env[assignment.slice(0, at)] = portsPut(assignment.slice(at + 1))
      }
      continue
    }
    assert.equal(command, 'codex-eq', `a README command this test does not know: ${line.join(' ')}`)
    const cli = args.map((arg) => portsPut(arg))
    if (cli[0] === 'store') {
      await mkdir(flagValue(cli, '--from')!, { recursive: true, mode: 0o700 })
      const copy = spawnCli(t, cli, { ...env, CODEX_EQ_REDIS_PASSWORD: vars.REDIS_PASSWORD! })
      const exit = await copy.exited
      assert.equal(exit.code, 0, `codex-eq ${cli.join(' ')} failed: ${copy.text()}`)
      assert.match(copy.text(), /copied 0 account\(s\)/)
      continue
    }
    assert.equal(cli[0], 'serve')
    const instance = spawnCli(t, cli, env)
    cleanup.after(async () => {
      if (instance.child.exitCode !== null || instance.child.signalCode !== null) return
      instance.child.kill('SIGTERM')
      await instance.exited
    })
    const listening = await instance.waitForLog((entry) => typeof entry.msg === 'string' && /^codex-equilibrium listening on /.test(entry.msg), 10_000)
    instance.url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(String(listening.msg))![1]!
    instances.push(instance)
    names.push(flagValue(cli, '--instance-name')!)
  }
  assert.ok(redisStarted, 'the README starts a redis-server')
  assert.equal(instances.length, 2, 'the README starts two instances')
  const [a, b] = instances as [ServerProcess, ServerProcess]
  assert.deepEqual([a.url, b.url], [`http://127.0.0.1:${ports.a}`, `http://127.0.0.1:${ports.b}`])

  // nginx: the README's upstream and server blocks in a minimal main config, everything in the temp dir.
  const nginxDir = join(dir, 'nginx')
  await mkdir(join(nginxDir, 'logs'), { recursive: true })
  const conf = join(nginxDir, 'nginx.conf')
  await writeFile(conf, [
    // As root the workers would run as nobody, who cannot write to this private temp dir.
    process.getuid?.() === 0 ? 'user root;' : '',
    'events {}',
    'http {',
    `  client_body_temp_path ${nginxDir}/client_body; proxy_temp_path ${nginxDir}/proxy;`,
    `  fastcgi_temp_path ${nginxDir}/fastcgi; uwsgi_temp_path ${nginxDir}/uwsgi; scgi_temp_path ${nginxDir}/scgi;`,
    '  access_log off;',
    portsPut(nginx),
    '}'
  ].join('\n'))
  assert.match(await readFile(conf, 'utf8'), new RegExp(`listen 127\\.0\\.0\\.1:${ports.nginx};`))
  const proxy = spawn(NGINX, ['-p', nginxDir, '-c', conf, '-g', `daemon off; pid ${nginxDir}/nginx.pid; error_log stderr;`], { stdio: ['ignore', 'ignore', 'pipe'] })
  let nginxOutput = ''
  proxy.stderr.setEncoding('utf8').on('data', (chunk: string) => { nginxOutput += chunk })
  const proxyExited = new Promise((resolve) => proxy.once('exit', resolve))
  cleanup.after(async () => {
    if (proxy.exitCode !== null || proxy.signalCode !== null) return
    proxy.kill('SIGTERM')
    await proxyExited
  })
  const front = `http://127.0.0.1:${ports.nginx}`
  await eventually('nginx answers /healthz', async () => {
    if (proxy.exitCode !== null) throw new Error(`nginx exited (${proxy.exitCode}): ${nginxOutput}`)
    return await fetch(`${front}/healthz`).then((response) => response.ok, () => false)
  }, 5_000)

  // One account imported through instance a; both serve it, behind nginx, with no stickiness there.
  const one = await importTokens(a.url, fake.addAccount({ email: 'one@example.com' }).tokens)
  const two = await importTokens(a.url, fake.addAccount({ email: 'two@example.com' }).tokens)
  const listed = async (url: string): Promise<Array<Record<string, unknown>>> => await (await fetch(`${url}/accounts`)).json() as Array<Record<string, unknown>>
  await eventually('instance b lists both accounts', async () => (await listed(b.url)).length === 2, 3_000)
  const turn = async (url: string, text: string): Promise<string> => {
    const response = await fetch(`${url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(responsesBody(text, { prompt_cache_key: 'conv-readme' })) })
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/)
    return await response.text()
  }
  /** The turns an instance served itself, from its own /metrics. */
  const served = async (instance: ServerProcess): Promise<number> => (await (await fetch(`${instance.url}/metrics`)).text()).split('\n')
    .filter((row) => row.startsWith('codex_eq_requests_total{') && row.includes('status="200"'))
    .reduce((sum, row) => sum + Number(row.slice(row.lastIndexOf(' ') + 1)), 0)
  for (let i = 0; i < 4; i++) assert.match(await turn(front, `through nginx ${i}`), new RegExp(`served by one@example\\.com: through nginx ${i}`))
  const shares = [await served(a), await served(b)]
  assert.equal(shares[0]! + shares[1]!, 4, `every turn through nginx was served once: ${shares.join(' + ')}`)
  assert.ok(shares[0]! > 0 && shares[1]! > 0, `nginx spread the turns over both instances: ${shares.join(' + ')}`)
  assert.equal(new Set(names).size, 2, `the README gives each instance its own name: ${names.join(', ')}`)
  await eventually('GET /accounts names an instance that served last', async () => names.includes(String((await listed(front)).find((view) => view.id === one)?.last_served_by)), 3_000)

  // The conversation's next turn on the other instance keeps its account, though the sticky choice moved.
  assert.equal((await fetch(`${front}/accounts/${two}/select`, { method: 'POST' })).status, 200)
  await eventually('both instances follow the sticky choice', async () => (await Promise.all([a, b].map(async (instance) => (await listed(instance.url)).find((view) => view.id === two)?.current === true))).every(Boolean), 3_000)
  await new Promise((resolve) => setTimeout(resolve, 400)) // the conversation notice is batched (200 ms)
  for (const instance of [a, b]) assert.match(await turn(instance.url, `next turn on ${instance === a ? 'a' : 'b'}`), /served by one@example\.com: next turn on/)
  for (let i = 0; i < 2; i++) assert.match(await turn(front, `next through nginx ${i}`), /served by one@example\.com/)
})
