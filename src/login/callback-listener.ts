import { setTimeout as sleep } from 'node:timers/promises'
import { LoginError } from './login-error.js'

/** A small HTML page for the browser that the issuer redirected to the callback port. */
export interface Page {
  status: number
  html: string
}

/** What the callback port answers: the issuer's redirect, and `GET /cancel` as Codex's own login server does. */
export interface CallbackRoutes {
  callback: (query: URLSearchParams) => Promise<Page>
  cancel: () => Promise<Page>
}

export interface RunningServer {
  port: number
  close: () => Promise<void>
}

/** Starts an HTTP server with the callback routes on 127.0.0.1:port (0: any free port). */
export type ServeCallbacks = (port: number, routes: CallbackRoutes) => Promise<RunningServer>

export interface CallbackListenerOptions {
  port: number
  serve: ServeCallbacks
  routes: CallbackRoutes
  /** Waits between attempts to take a busy port after asking its holder to cancel. */
  retryDelayMs?: number
}

const BIND_ATTEMPTS = 10
const CANCEL_TIMEOUT_MS = 2000

/**
 * The temporary listener on the callback port. The issuer only redirects to localhost:1455, a port
 * every Codex login on this machine needs too, so it is open only while a login holds it: the first
 * `hold()` opens it, the last `release()` closes it.
 */
export class CallbackListener {
  private holders = 0
  private server: RunningServer | null = null
  /** Opening and closing run one after the other, so a login started while closing gets a fresh listener. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor (private readonly o: CallbackListenerOptions) {}

  /** Keeps the listener open for one more login; resolves to the port it listens on. */
  async hold (): Promise<number> {
    this.holders++
    try {
      return await this.serialized(() => this.open())
    } catch (err) {
      this.release()
      throw err
    }
  }

  release (): void {
    this.holders = Math.max(0, this.holders - 1)
    if (this.holders === 0) void this.serialized(() => this.closeIfIdle())
  }

  /** Closes the listener whatever holds it (the process is stopping). */
  async close (): Promise<void> {
    this.holders = 0
    await this.serialized(() => this.closeIfIdle())
  }

  private serialized<T> (step: () => Promise<T>): Promise<T> {
    const next = this.queue.then(step, step)
    this.queue = next.catch(() => {})
    return next
  }

  private async open (): Promise<number> {
    if (this.server !== null) return this.server.port
    const { port } = this.o
    for (let attempt = 1; ; attempt++) {
      try {
        this.server = await this.o.serve(port, this.o.routes)
        return this.server.port
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err
        if (attempt === BIND_ATTEMPTS) throw portBusy(port)
        // A Codex login left open holds the port; its server stops when asked to cancel.
        if (attempt === 1) await askToCancel(port)
        await sleep(this.o.retryDelayMs ?? 200)
      }
    }
  }

  private async closeIfIdle (): Promise<void> {
    if (this.holders > 0 || this.server === null) return
    const server = this.server
    this.server = null
    await server.close()
  }
}

async function askToCancel (port: number): Promise<void> {
  try {
    const answer = await fetch(`http://127.0.0.1:${port}/cancel`, { signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS) })
    await answer.body?.cancel()
  } catch {
    // Whatever holds the port does not speak HTTP or did not answer: the retries will tell.
  }
}

function portBusy (port: number): LoginError {
  return new LoginError('port_busy', `the callback port ${port} is in use by another program, so the sign-in cannot come back to codex-eq. ` +
    `It did not free itself when sent GET http://localhost:${port}/cancel. Find it with "lsof -i :${port}" ` +
    '(often an unfinished "codex login"), stop it, and try again')
}
