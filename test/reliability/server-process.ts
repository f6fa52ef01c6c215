/**
 * The built CLI (`node dist/src/cli.js serve`) as a real child process: for what only a process can
 * show (kill -9, SIGTERM and the exit code, a second process on the same directory, its memory).
 *
 *   const { fake, env } = await fakesForProcess(t)
 *   const server = await spawnServer(t, { args: ['--shutdown-grace', '5s'], env })
 *   server.url, server.pid, server.logs (parsed JSON lines), server.stderr, await server.exited
 *
 * The child gets a clean environment (PATH only, plus `env`), listens on 127.0.0.1 and a free port,
 * and is killed when the test ends if it is still running.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { WebSocket } from 'ws'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/index.js'
import { tempDir } from '../helpers/stack.js'

export const CLI_PATH = fileURLToPath(new URL('../../src/cli.js', import.meta.url))

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface ServerProcess {
  child: ChildProcess
  pid: number
  /** http://127.0.0.1:PORT once listening ('' for a process that never listened). */
  url: string
  /** Every JSON line written to stdout so far. */
  logs: Array<Record<string, unknown>>
  /** stdout lines that were not JSON, and all of stderr. */
  text: () => string
  exited: Promise<Exit>
  /** Resolves with the first log line (already written or to come) that matches. */
  waitForLog: (match: (line: Record<string, unknown>) => boolean, timeoutMs?: number) => Promise<Record<string, unknown>>
}

export interface ProcessFixture {
  fake: FakeOpenAI
  authsDir: string
  /** Points a server process at the fakes and the auths dir. */
  env: Record<string, string>
}

/** The fakes, started in this process, and a fresh auths dir (not created yet); closed when the test ends. */
export async function fakesForProcess (t: TestContext): Promise<ProcessFixture> {
  const fake = await startFakeOpenAI()
  t.after(() => fake.close())
  const authsDir = join(await tempDir(t), 'auths')
  return { fake, authsDir, env: { CODEX_EQ_UPSTREAM: fake.backendUrl, CODEX_EQ_ISSUER: fake.issuerUrl, CODEX_EQ_AUTHS_DIR: authsDir, CODEX_EQ_CALLBACK_PORT: '0' } }
}

/** Starts `codex-eq <args>` and returns at once (the process may still be starting or failing). */
export function spawnCli (t: TestContext, args: string[], env: Record<string, string> = {}, nodeFlags: string[] = []): ServerProcess {
  const child = spawn(process.execPath, [...nodeFlags, CLI_PATH, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const logs: Array<Record<string, unknown>> = []
  let other = ''
  const waiters: Array<{ match: (line: Record<string, unknown>) => boolean, resolve: (line: Record<string, unknown>) => void }> = []
  let pendingLine = ''
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => {
    pendingLine += chunk
    const lines = pendingLine.split('\n')
    pendingLine = lines.pop()!
    for (const line of lines) {
      let parsed: Record<string, unknown>
      try {
        parsed = JSON.parse(line) as Record<string, unknown>
      } catch {
        other += line + '\n'
        continue
      }
      logs.push(parsed)
      for (const waiter of waiters.splice(0)) {
        if (waiter.match(parsed)) waiter.resolve(parsed)
        else waiters.push(waiter)
      }
    }
  })
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (chunk: string) => { other += chunk })
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const server: ServerProcess = {
    child,
    pid: child.pid!,
    url: '',
    logs,
    text: () => other + pendingLine,
    exited,
    waitForLog (match, timeoutMs = 20_000) {
      const seen = logs.find(match)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; output so far:\n${logs.map((l) => JSON.stringify(l)).join('\n')}\n${other}`)), timeoutMs)
        const waiter = { match, resolve: (line: Record<string, unknown>) => { clearTimeout(timer); resolve(line) } }
        waiters.push(waiter)
        void exited.then((exit) => {
          if (!waiters.includes(waiter)) return
          clearTimeout(timer)
          reject(new Error(`the process exited (${JSON.stringify(exit)}) before the expected log line; output:\n${logs.map((l) => JSON.stringify(l)).join('\n')}\n${other}`))
        })
      })
    }
  }
  return server
}

/** Starts `codex-eq serve` on 127.0.0.1 and a free port and waits until it listens. */
export async function spawnServer (t: TestContext, o: { args?: string[], env?: Record<string, string>, nodeFlags?: string[] } = {}): Promise<ServerProcess> {
  const server = spawnCli(t, ['serve', '--host', '127.0.0.1', '--port', '0', ...(o.args ?? [])], o.env, o.nodeFlags)
  const line = await server.waitForLog((entry) => typeof entry.msg === 'string' && /^codex-equilibrium listening on /.test(entry.msg))
  server.url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(String(line.msg))![1]!
  return server
}

/** The resident memory of a process, from /proc (bytes). */
export async function residentBytes (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (match === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

/** The Node flag that opens a child's inspector on 127.0.0.1 and a free port, for `collectGarbage`. */
export const INSPECT_FLAG = '--inspect=127.0.0.1:0'

/**
 * Asks a child started with INSPECT_FLAG for a full garbage collection, through its inspector
 * (HeapProfiler.collectGarbage). When V8 collects by itself is its own choice (on an idle process,
 * its memory reducer some seconds after the traffic stops, later on a busy machine); a collection
 * on demand shows, without waiting on that, whether anything still holds on to what was freed.
 */
export async function collectGarbage (server: ServerProcess): Promise<void> {
  const address = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(server.text())?.[1]
  if (address === undefined) throw new Error(`the process has no inspector (start it with ${INSPECT_FLAG}); its output:\n${server.text()}`)
  const socket = new WebSocket(address)
  try {
    await once(socket, 'open')
    socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }))
    for (;;) {
      const [data] = await once(socket, 'message') as [Buffer]
      const reply = JSON.parse(data.toString()) as { id?: number, error?: { message: string } }
      if (reply.id !== 1) continue
      if (reply.error !== undefined) throw new Error(`HeapProfiler.collectGarbage: ${reply.error.message}`)
      return
    }
  } finally {
    socket.close()
  }
}

/** Imports a token set into a running server, as `POST /accounts/import` (the id of the account). */
export async function importTokens (url: string, tokens: { id_token: string, access_token: string, refresh_token: string }, adminToken?: string): Promise<string> {
  const response = await fetch(`${url}/accounts/import`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(adminToken === undefined ? {} : { authorization: `Bearer ${adminToken}` }) },
    body: JSON.stringify({ id_token: tokens.id_token, access_token: tokens.access_token, refresh_token: tokens.refresh_token })
  })
  if (response.status !== 201 && response.status !== 200) throw new Error(`import failed: ${response.status} ${await response.text()}`)
  return (await response.json() as { id: string }).id
}
