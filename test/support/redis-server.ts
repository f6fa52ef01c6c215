/*
 * A real redis-server for the shared-store tests, on a free loopback port, in a temp dir. A machine
 * without redis-server fails these tests with a message (install the Debian package redis-server);
 * they never skip: a run that cannot exercise the shared store must not pass.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { Redis } from 'ioredis'
import { join } from 'node:path'

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server']

export interface RedisServer {
  url: string
  port: number
  dir: string
  /** Stops it (SIGTERM: with appendonly, what it holds is on disk). */
  stop: () => Promise<void>
  /** Kills it at once (SIGKILL). */
  kill: () => Promise<void>
  /** Starts it again on the same port and dir. */
  start: () => Promise<void>
  /** Kills it and removes its dir. */
  cleanup: () => Promise<void>
}

export interface RedisServerOptions {
  /** Persist with an append-only file (for restart tests). */
  appendonly?: boolean
  password?: string
  /** The port to listen on (default: a free one). */
  port?: number
  /** More redis-server arguments, after the test's own (a later one wins): e.g. the README's. */
  args?: string[]
}

export function redisServerPath (): string {
  const found = CANDIDATES.find((path) => existsSync(path))
  if (found === undefined) throw new Error('redis-server is not installed (looked in /usr/bin and /usr/local/bin): install the Debian package redis-server (apt-get install redis-server); the shared-store tests need a real one')
  return found
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}

/** Starts redis-server and waits for its PING; the caller stops it (or uses `withRedis`). */
export async function launchRedis (o: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = redisServerPath()
  const dir = await mkdtemp(join(tmpdir(), 'ceq-redis-'))
  const port = o.port ?? await freePort()
  let child: ChildProcess | null = null
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', o.appendonly === true ? 'yes' : 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning']
  if (o.password !== undefined) args.push('--requirepass', o.password)
  args.push(...(o.args ?? []))
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    dir,
    async start () {
      child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
      const exited = new Promise<never>((_resolve, reject) => {
        child!.once('exit', (code) => { reject(new Error(`redis-server exited (${code}) at start: ${stderr}`)) })
      })
      await Promise.race([waitForPing(port, o.password), exited])
    },
    async stop () { await end('SIGTERM') },
    async kill () { await end('SIGKILL') },
    async cleanup () {
      await end('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  }
  async function end (signal: NodeJS.Signals): Promise<void> {
    const running = child
    child = null
    if (running === null || running.exitCode !== null) return
    const gone = new Promise((resolve) => running.once('exit', resolve))
    running.kill(signal)
    await gone
  }
  await server.start()
  return server
}

/** A redis-server for one test, stopped and removed in `t.after`. */
export async function startRedis (t: { after: (fn: () => Promise<void>) => unknown }, o: RedisServerOptions = {}): Promise<RedisServer> {
  const server = await launchRedis(o)
  t.after(async () => { await server.cleanup() })
  return server
}

/** Sends PING until +PONG (or -NOAUTH: it is up and wants a password) comes back, for up to 5 s. */
async function waitForPing (port: number, password?: string): Promise<void> {
  const deadline = Date.now() + 5_000
  for (;;) {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      let text = ''
      socket.on('connect', () => { socket.write(password === undefined ? 'PING\r\n' : `AUTH ${password}\r\nPING\r\n`) })
      socket.on('data', (chunk) => { text += chunk.toString(); if (text.includes('PONG')) socket.end() })
      socket.on('close', () => { resolve(text) })
      socket.on('error', () => { resolve('') })
      socket.setTimeout(500, () => { socket.destroy() })
    })
    if (answer.includes('PONG')) return
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 5 s`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A plain client to look into Redis behind the store's back; closed when the test ends. */
export function rawClient (t: { after: (fn: () => void) => unknown }, url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1 })
  client.on('error', () => {}) // a Redis the test stops on purpose
  t.after(() => { client.disconnect() })
  return client
}
