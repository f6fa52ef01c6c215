import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url))

export interface Finished { code: number | null, stdout: string, stderr: string }

export interface RunningCli {
  /** Resolves with the first match of `pattern` in what the CLI wrote to stderr (fails after 15 s or on exit). */
  waitForStderr: (pattern: RegExp) => Promise<RegExpMatchArray>
  write: (text: string) => void
  endInput: () => void
  done: Promise<Finished>
}

/**
 * Spawns the built CLI (`node dist/src/cli.js …`) with these env vars and none of the caller's
 * CODEX_EQ_* ones, and no display (so no browser is ever opened). Killed when the test ends.
 */
export function startCli (t: TestContext, args: string[], env: Record<string, string> = {}): RunningCli {
  const base: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('CODEX_EQ_') && name !== 'DISPLAY' && name !== 'WAYLAND_DISPLAY') base[name] = value
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...base, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const watchers = new Set<() => void>()
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s
    for (const watch of watchers) watch()
  })
  const done = new Promise<Finished>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => {
      for (const watch of watchers) watch()
      resolve({ code, stdout, stderr })
    })
  })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return {
    done,
    write: (text) => { child.stdin.write(text) },
    endInput: () => { child.stdin.end() },
    waitForStderr: (pattern) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => { finish(); reject(new Error(`no ${String(pattern)} on stderr within 15 s:\n${stderr}`)) }, 15_000)
      const finish = (): void => { clearTimeout(timer); watchers.delete(check) }
      const check = (): void => {
        const match = pattern.exec(stderr)
        if (match !== null) {
          finish()
          resolve(match)
        } else if (child.exitCode !== null) {
          finish()
          reject(new Error(`the CLI exited (${child.exitCode}) before printing ${String(pattern)}:\nstdout: ${stdout}\nstderr: ${stderr}`))
        }
      }
      watchers.add(check)
      check()
    })
  }
}

/** Runs the CLI to its end (with stdin closed). */
export async function runCli (t: TestContext, args: string[], env: Record<string, string> = {}): Promise<Finished> {
  const running = startCli(t, args, env)
  running.endInput()
  return await running.done
}
