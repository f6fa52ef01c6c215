import { fork, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'

/** A server run in a process of its own, so that its CPU and memory are its own. */
export interface Child {
  port: number
  pid: number
  /** Resident memory now (VmRSS from /proc), in bytes. */
  rss: () => Promise<number>
  /** CPU time used so far (user + system, from /proc), in ms. */
  cpu: () => Promise<number>
  /** What the process says of its memory (V8 heap, buffers), when it can say. */
  memory: () => Promise<NodeJS.MemoryUsage | null>
  /** Request bytes a bench upstream has received so far (only the bench upstream counts them). */
  bytes?: () => Promise<number>
  stop: () => Promise<void>
}

/**
 * Open files a server may need: 10,000 streams through a proxy are 20,000 sockets. The children
 * start through `sh` to raise their own limit (root may raise it past the hard one, others up to it).
 */
const OPEN_FILES = 65_536
const RAISE_OPEN_FILES = `ulimit -n ${OPEN_FILES} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"`

/**
 * The bench servers' listen backlog (the kernel caps it at net.core.somaxconn): thousands of streams
 * opening at once overflow Node's default of 511 while a busy server is slow to accept, and the
 * kernel then resets connections the clients believe open.
 */
export const LISTEN_BACKLOG = 4096

/** A script that serves, then says `{ port }` over IPC; it stops cleanly on SIGTERM. */
export async function startChild (script: URL, args: string[], execArgv: string[] = []): Promise<Child> {
  // fork() runs `execPath ...execArgv script ...args`: here `sh -c '…; exec node …'`, same pid, same IPC channel.
  const child = fork(script, args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execPath: '/bin/sh', execArgv: ['-c', RAISE_OPEN_FILES, process.execPath, ...execArgv] })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message: { port: number }) => { resolve(message.port) })
    child.once('exit', (code) => { reject(new Error(`${script.pathname} exited with ${code} before listening`)) })
  })
  return {
    port,
    pid: child.pid!,
    rss: () => rssOf(child.pid!),
    cpu: () => cpuOf(child.pid!),
    memory: () => new Promise((resolve) => {
      child.once('message', (message: { memory: NodeJS.MemoryUsage }) => { resolve(message.memory) })
      child.send('memory')
    }),
    bytes: () => new Promise((resolve) => {
      child.once('message', (message: { bytes: number }) => { resolve(message.bytes) })
      child.send('bytes')
    }),
    stop: () => stopChild(child)
  }
}

export async function rssOf (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)
  return kb === null ? 0 : Number(kb[1]) * 1024
}

/** utime + stime of a process, from /proc/<pid>/stat (in clock ticks: 100 a second on Linux). */
export async function cpuOf (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may hold spaces: count fields from after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => { resolve() })
    child.kill('SIGTERM')
  })
}

/** For the child side: report the port, and exit once `close` is done when told to stop. */
export function serveAsChild (port: number, close: () => Promise<void>): void {
  process.send!({ port })
  process.on('message', (message) => {
    if (message === 'memory') process.send!({ memory: process.memoryUsage() })
  })
  process.once('SIGTERM', () => {
    close().finally(() => { process.exit(0) })
  })
  // The bench died: do not outlive it.
  process.once('disconnect', () => { process.exit(0) })
}
