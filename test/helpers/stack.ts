import { mkdtemp, rm } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { buildApp, type BuildOptions } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { startFakeOpenAI, type FakeAccount, type FakeOpenAI, type FakeOpenAIOptions } from '../fakes/index.js'

export interface Stack {
  app: FastifyInstance
  /** e.g. http://127.0.0.1:PORT */
  url: string
  fake: FakeOpenAI
  config: Config
  authsDir: string
  /** Everything the app logged, one parsed JSON object per line. */
  logs: Array<Record<string, unknown>>
  /** Adds a fake account and imports it into the pool through the management API. */
  addAccount: (o?: { email?: string, plan?: string }) => Promise<FakeAccount & { id: string }>
  /** Stops the app (keeps the fake and the auths dir) and builds a new one on the same dir. */
  restart: () => Promise<void>
}

export function tempDir (t: TestContext, prefix = 'ceq-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix)).then((dir) => {
    t.after(() => rm(dir, { recursive: true, force: true }))
    return dir
  })
}

/**
 * The real app against the fake issuer and backend, listening on a random loopback port.
 * Everything is closed when the test ends.
 */
export async function startStack (t: TestContext, o: { settings?: Record<string, string | string[]>, fake?: FakeOpenAIOptions, build?: BuildOptions, authsDir?: string } = {}): Promise<Stack> {
  const fake = await startFakeOpenAI(o.fake)
  const scratch = await mkdtemp(join(tmpdir(), 'ceq-'))
  const authsDir = o.authsDir ?? join(scratch, 'auths')
  const config = loadConfig({ port: '0', authsDir, upstream: fake.backendUrl, issuer: fake.issuerUrl, callbackPort: '0', logLevel: 'debug', ...o.settings }, {})
  const logs: Array<Record<string, unknown>> = []
  const sink = { write (line: string) { logs.push(JSON.parse(line) as Record<string, unknown>) } }

  const stack: Stack = {
    app: undefined as unknown as FastifyInstance,
    url: '',
    fake,
    config,
    authsDir,
    logs,
    async addAccount (a = {}) {
      const account = fake.addAccount(a)
      const response = await fetch(`${stack.url}/accounts/import`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(config.adminToken === null ? {} : { authorization: `Bearer ${config.adminToken}` }) },
        body: JSON.stringify({ id_token: account.tokens.id_token, access_token: account.tokens.access_token, refresh_token: account.tokens.refresh_token })
      })
      if (response.status !== 201 && response.status !== 200) throw new Error(`import failed: ${response.status} ${await response.text()}`)
      const view = await response.json() as { id: string }
      return { ...account, id: view.id }
    },
    async restart () {
      await stack.app.close()
      await launch()
    }
  }

  async function launch (): Promise<void> {
    const app = await buildApp(config, { logger: pino({ level: config.logLevel }, sink), ...o.build })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    stack.app = app
    stack.url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  }
  // One hook, in order: the app first (it writes to the auths dir), then the fake, then the files.
  // The test is over: connections still open are cut rather than waited for (one a client opened
  // and never used would hold the close until the server's headers timeout, a minute).
  t.after(async () => {
    stack.app?.server.closeAllConnections()
    await stack.app?.close()
    await fake.close()
    await rm(scratch, { recursive: true, force: true })
  })
  await launch()
  return stack
}

/** A Codex-like /v1/responses body. */
export function responsesBody (text = 'hello', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: 'gpt-5-codex',
    instructions: 'You are a coding agent.',
    input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text }] }],
    tools: [],
    tool_choice: 'auto',
    parallel_tool_calls: false,
    reasoning: { effort: 'medium', summary: 'auto' },
    store: false,
    stream: true,
    include: ['reasoning.encrypted_content'],
    prompt_cache_key: 'conv-1',
    ...extra
  }
}

export async function postResponses (stack: Stack, body: unknown = responsesBody(), headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${stack.url}/v1/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify(body)
  })
}

/** The status of a GET sent with `path` exactly as written (fetch would normalise `..` and `//`). */
export function rawGetStatus (stack: Stack, path: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${stack.url}${path}`, { method: 'GET', path }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end()
  })
}
