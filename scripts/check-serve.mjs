#!/usr/bin/env node
// Starts the server the way a user or a service manager would, and stops it the same way:
// runs `<command...> --port 0 --auths-dir <temp dir>`, waits for the "listening on" log line,
// expects GET /healthz to answer 200, sends SIGTERM to the server process (the pid of that log
// line, which is not the command's own pid under `npm start`) and expects the command to exit 0.
//
//   node scripts/check-serve.mjs npm start --                 (a checkout: prestart builds first)
//   node scripts/check-serve.mjs /path/to/codex-eq serve      (an installation)
//
// Prints one line and exits 0 when all of that holds; otherwise prints why and the server's output.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const START_TIMEOUT_MS = 240_000 // `npm start` compiles the project before it listens
const STOP_TIMEOUT_MS = 30_000

const command = process.argv.slice(2)
if (command.length === 0) {
  console.error('usage: node scripts/check-serve.mjs <command...>   (gets --port 0 --auths-dir <temp dir>)')
  process.exit(2)
}

const authsDir = join(mkdtempSync(join(tmpdir(), 'codex-eq-check-')), 'auths')
const server = spawn(command[0], [...command.slice(1), '--port', '0', '--auths-dir', authsDir], { stdio: ['ignore', 'pipe', 'pipe'] })
let output = ''
server.stdout.on('data', (chunk) => { output += chunk })
server.stderr.on('data', (chunk) => { output += chunk })
const exited = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })))

function fail (why) {
  console.error(`check-serve: ${command.join(' ')}: ${why}\n--- its output ---\n${output}`)
  server.kill('SIGKILL')
  rmSync(join(authsDir, '..'), { recursive: true, force: true })
  process.exit(1)
}

async function waitFor (what, find, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = find()
    if (found !== undefined) return found
    if (server.exitCode !== null || server.signalCode !== null) fail(`exited before ${what}`)
    if (Date.now() > deadline) fail(`no ${what} within ${timeoutMs / 1000}s`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const listening = await waitFor('"listening on" log line', () => /"pid":(\d+),.*listening on (http:\/\/[^\s"]+)/.exec(output) ?? undefined, START_TIMEOUT_MS)
const [, pid, url] = listening
const health = await fetch(`${url}/healthz`).then(async (response) => ({ status: response.status, body: await response.text() }), (err) => fail(`GET /healthz: ${err.message}`))
if (health.status !== 200) fail(`GET /healthz answered ${health.status}: ${health.body}`)
process.kill(Number(pid), 'SIGTERM')
const timer = setTimeout(() => fail(`still running ${STOP_TIMEOUT_MS / 1000}s after SIGTERM`), STOP_TIMEOUT_MS)
const { code, signal } = await exited
clearTimeout(timer)
if (code !== 0) fail(`SIGTERM ended it with ${signal ?? `exit code ${code}`}, not exit code 0`)
rmSync(join(authsDir, '..'), { recursive: true, force: true })
console.log(`check-serve: ${command.join(' ')}: listened on ${url}, /healthz 200 ${health.body}, SIGTERM -> exit 0`)
