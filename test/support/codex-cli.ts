/*
 * Runs the real Codex CLI (pinned @openai/codex@0.171.0, the newest release; observations below were made with 0.169.0 and still hold) against a local provider.
 *
 * What Codex CLI 0.169.0 does with a custom provider (`wire_api = "responses"`), observed with a
 * local SSE server (see codex-cli.test.ts):
 *
 * Requests
 * - Only `POST {base_url}/responses` (with base_url `http://127.0.0.1:PORT/v1`: `/v1/responses`),
 *   HTTP/1.1, keep-alive. No `/models`, no `/responses/compact`, no WebSocket, no GET of any kind,
 *   with or without `env_key`. Body is plain JSON (no content-encoding), ~55 KB for a one-line prompt.
 * - Headers, in the order sent: `x-codex-beta-features: remote_compaction_v2`,
 *   `x-codex-window-id: <thread id>:0`, `x-codex-turn-metadata: <JSON: installation_id, session_id,
 *   thread_id, turn_id, window_id, request_kind "turn", sandbox, model, reasoning_effort, ...>`,
 *   `x-openai-internal-codex-responses-lite: true`, `x-client-request-id: <thread id>`,
 *   `session-id: <thread id>`, `thread-id: <thread id>`, `accept: text/event-stream`,
 *   `content-type: application/json`, `authorization: Bearer <key>` (ONLY when `env_key` is set;
 *   never otherwise), `originator: codex_exec`,
 *   `user-agent: codex_exec/0.169.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.169.0)`, `host`,
 *   `content-length`. No `ChatGPT-Account-ID`, no cookie, no accept-encoding.
 * - Body top-level keys, in order: `model` ("gpt-6.1-sol" by default), `stream: true`, `input`,
 *   `tool_choice: "auto"`, `parallel_tool_calls: false`, `reasoning: {effort: "low", context:
 *   "all_turns"}`, `store: false`, `include: ["reasoning.encrypted_content"]`, `prompt_cache_key`
 *   (= thread id), `text: {verbosity: "low"}`, `client_metadata` (x-codex-turn-metadata,
 *   session_id, thread_id, turn_id, root_turn_id, x-codex-window-id, x-codex-installation-id).
 *   There is NO top-level `tools` and NO `instructions`: the tools come as an `input` item of type
 *   `additional_tools` (role developer), then developer messages (system prompt, skills, agent
 *   role), a user `<environment_context>` message, and last the user's prompt as
 *   `{type: "message", role: "user", content: [{type: "input_text", text: <prompt>}]}`.
 *
 * Answers (200, `content-type: text/event-stream`)
 * - Events are parsed by the JSON `type` field; `event:` lines are optional. Unknown/extra events
 *   (response.in_progress, content_part.added/done, output_text.done, reasoning items) are fine.
 * - The final message comes ONLY from `response.output_item.done` with
 *   `item: {type: "message", role: "assistant", content: [{type: "output_text", text}]}`;
 *   `output_text.delta`s are only streamed to the UI (if delta and done texts differ, done wins;
 *   deltas without a preceding `output_item.added` log "OutputTextDelta without active item").
 * - Minimal turn that succeeds: `response.output_item.done` (message) then `response.completed`
 *   with `response.id`. `response.created` / `output_item.added` / deltas are optional. The usual
 *   sequence works: created -> output_item.added -> output_text.delta... -> output_item.done ->
 *   completed `{response: {id, usage: {input_tokens, output_tokens, total_tokens}}}` (usage
 *   optional; "tokens used" is printed from it).
 * - `response.completed` without `response.id` -> "failed to parse ResponseCompleted: missing
 *   field `id`", retried like a dropped stream. Only `response.completed` (no message) -> exit 0,
 *   empty last message ("Warning: no last agent message").
 *
 * Errors (defaults: request_max_retries 4, stream_max_retries 5)
 * - Retries come in two nested loops: each "stream attempt" sends the request up to
 *   1 + request_max_retries times on 5xx (backoff ~200, 400, 800, 1600 ms); a failed attempt is
 *   retried up to stream_max_retries times ("Reconnecting... n/5" on stderr, backoff ~0.2, 0.4,
 *   0.8, 1.6, 3.2 s). A persistent 500 therefore gives 6 x 5 = 30 requests and ~25 s, then exit 1 with
 *   "We’re currently experiencing high demand, which may cause temporary errors." (a 503 is shown
 *   as "unexpected status 503 Service Unavailable: <body>, url: ..."). The apostrophes in CLI
 *   messages are U+2019.
 * - Stream closed before `response.completed`, `response.failed`, socket reset mid-stream, or a
 *   401 without auth: no inner retries, 1 + stream_max_retries requests (6 by default, ~6.5 s).
 *   `response.failed` with code `rate_limit_exceeded` and "try again in Ns" waits N s between them.
 * - HTTP 429 with `error.type: "usage_limit_reached"`: exactly ONE request, no retry, exit 1,
 *   stderr "ERROR: You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro),
 *   visit https://chatgpt.com/settings/usage to purchase more credits or try again at 11:29 AM."
 *   (local time of `resets_at`; "try again later." when no resets_at). Any other 429: also one
 *   request, "exceeded retry limit, last status: 429 Too Many Requests".
 * - 400 `{"detail": "..."}`: one request, exit 1, stderr "ERROR: {\"detail\":\"...\"}".
 * - Connection refused: retried FOREVER ("Reconnecting... waiting for network") unless
 *   `features.unbounded_connection_retries=false`; then it follows the retry counts above.
 * - Shortening: `-c model_providers.<id>.request_max_retries=0`, `...stream_max_retries=0` (both 0:
 *   exactly one request), `...stream_idle_timeout_ms=1000` (no SSE event for that long: "idle
 *   timeout waiting for SSE", counted as a stream failure). `--strict-config` accepts all of them.
 *
 * Elsewhere (without the overrides below, a fresh CODEX_HOME makes these on every run):
 * `git ls-remote https://github.com/openai/plugins.git`, then `api.github.com/repos/openai/plugins`,
 * then `chatgpt.com/backend-api/plugins/export/curated` (curated plugin sync: features.plugins);
 * OTLP metrics to `https://ab.chatgpt.com/otlp/v1/metrics` (analytics.enabled / otel.*); a login
 * shell `bash -lc` to snapshot the user's environment (features.shell_snapshot). With the overrides
 * in HARDENING_CONFIG, strace shows no DNS lookup and no connect() except to the base URL.
 * Output: stdout holds only the final message; the transcript, "Reconnecting..." and "ERROR: ..."
 * lines go to stderr (always also "WARNING: proceeding, even though we could not create PATH
 * aliases ..." for a CODEX_HOME under /tmp, and "Reading additional input from stdin...").
 * Exit codes: 0 on a completed turn (even with an empty answer), 1 on any error.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { hostname, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const CODEX_CLI_VERSION = '0.171.0'
export const CODEX_PROVIDER_ID = 'codex_equilibrium'
export const CODEX_API_KEY_ENV = 'CODEX_EQ_API_KEY'

/** How long one install may take before it is killed (npm fetches ~400 MB). */
const INSTALL_TIMEOUT_MS = Number(process.env.CODEX_CLI_INSTALL_TIMEOUT_MS ?? 15 * 60_000)

/** `-c` overrides that keep the CLI quiet, local and quick. All are checked by --strict-config. */
export const HARDENING_CONFIG: Readonly<Record<string, string | number | boolean>> = {
  'analytics.enabled': false,
  'otel.exporter': 'none',
  'otel.metrics_exporter': 'none',
  'otel.trace_exporter': 'none',
  check_for_update_on_startup: false,
  'features.plugins': false,
  'features.shell_snapshot': false,
  'features.unbounded_connection_retries': false
}

const PLATFORM_PACKAGES: Record<string, { triple: string, pkg: string }> = {
  'linux-x64': { triple: 'x86_64-unknown-linux-musl', pkg: '@openai/codex-linux-x64' },
  'linux-arm64': { triple: 'aarch64-unknown-linux-musl', pkg: '@openai/codex-linux-arm64' },
  'darwin-x64': { triple: 'x86_64-apple-darwin', pkg: '@openai/codex-darwin-x64' },
  'darwin-arm64': { triple: 'aarch64-apple-darwin', pkg: '@openai/codex-darwin-arm64' },
  'win32-x64': { triple: 'x86_64-pc-windows-msvc', pkg: '@openai/codex-win32-x64' },
  'win32-arm64': { triple: 'aarch64-pc-windows-msvc', pkg: '@openai/codex-win32-arm64' }
}

function repoRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'codex-equilibrium') return dir
      } catch { /* keep looking */ }
    }
    const parent = dirname(dir)
    if (parent === dir) throw new Error('codex-cli: cannot find the repository root (package.json "codex-equilibrium")')
    dir = parent
  }
}

/** `.cache/codex-cli/` at the repository root. */
export function codexCacheDir (): string {
  return join(repoRoot(), '.cache', 'codex-cli')
}

/** Finds the native executable inside an install prefix, the way `@openai/codex`'s bin/codex.js does. */
function findBinary (prefix: string): string {
  const platform = PLATFORM_PACKAGES[`${process.platform === 'android' ? 'linux' : process.platform}-${process.arch}`]
  if (platform === undefined) throw new Error(`codex-cli: unsupported platform ${process.platform}/${process.arch}`)
  const exe = process.platform === 'win32' ? 'codex.exe' : 'codex'
  const mainPkg = join(prefix, 'node_modules', '@openai', 'codex', 'package.json')
  let vendorRoot = join(prefix, 'node_modules', '@openai', 'codex', 'vendor')
  try {
    vendorRoot = join(dirname(createRequire(mainPkg).resolve(`${platform.pkg}/package.json`)), 'vendor')
  } catch { /* fall back to the vendor dir inside @openai/codex */ }
  return join(vendorRoot, platform.triple, 'bin', exe)
}

/**
 * Runs a command to completion. With `group`, the command gets its own process group and a timeout
 * ends the whole group (the CLI and anything it started); without, only the command is signalled,
 * but it stays in our group and so goes away with us on Ctrl-C.
 */
function run (cmd: string, args: string[], opts: { cwd: string, timeoutMs: number, env?: NodeJS.ProcessEnv, group?: boolean }): Promise<{ code: number | null, stdout: string, stderr: string, timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const group = opts.group === true
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: group })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    const timer = setTimeout(() => { timedOut = true; stop(child, group) }, opts.timeoutMs)
    // the leader exited but something it left behind still holds the pipes: end the group
    if (group) child.on('exit', () => { setTimeout(() => stop(child, true), 2000).unref() })
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, timedOut }) })
  })
}

/** SIGTERM to the child (or its process group), SIGKILL 2 s later. */
function stop (child: ChildProcess, group: boolean): void {
  const pid = child.pid
  if (pid === undefined || child.stdout?.closed === true) return
  const send = (sig: NodeJS.Signals): void => {
    try {
      if (group) process.kill(-pid, sig)
      else child.kill(sig)
    } catch { /* already gone */ }
  }
  send('SIGTERM')
  setTimeout(() => send('SIGKILL'), 2000).unref()
}

function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function binaryWorks (bin: string): Promise<boolean> {
  if (!existsSync(bin)) return false
  try {
    const r = await run(bin, ['--version'], { cwd: dirname(bin), timeoutMs: 30_000 })
    return r.code === 0 && r.stdout.includes(CODEX_CLI_VERSION)
  } catch {
    return false
  }
}

/** A lock directory holding owner.json; stale when its owner is dead or it outlived an install. */
async function lockIsStale (lockDir: string): Promise<boolean> {
  try {
    const owner = JSON.parse(await readFile(join(lockDir, 'owner.json'), 'utf8')) as { pid: number, host: string, started: number }
    if (Date.now() - owner.started > INSTALL_TIMEOUT_MS + 60_000) return true
    return owner.host === hostname() && !processAlive(owner.pid)
  } catch {
    // owner.json not written yet (or unreadable): judge by the directory's age
    try {
      return Date.now() - (await stat(lockDir)).mtimeMs > 30_000
    } catch {
      return false // the lock just went away
    }
  }
}

async function install (cacheDir: string, finalDir: string): Promise<void> {
  const staging = join(cacheDir, `.staging-${process.pid}-${randomBytes(4).toString('hex')}`)
  await mkdir(staging, { recursive: true })
  try {
    const r = await run('npm', ['install', '--prefix', staging, '--no-save', '--no-package-lock', '--no-audit', '--no-fund',
      '--no-update-notifier', '--loglevel=error', `@openai/codex@${CODEX_CLI_VERSION}`], { cwd: staging, timeoutMs: INSTALL_TIMEOUT_MS })
    if (r.timedOut) throw new Error(`codex-cli: npm install timed out after ${INSTALL_TIMEOUT_MS} ms`)
    if (r.code !== 0) throw new Error(`codex-cli: npm install failed (exit ${String(r.code)}):\n${r.stderr || r.stdout}`)
    if (!(await binaryWorks(findBinary(staging)))) throw new Error(`codex-cli: installed, but ${findBinary(staging)} does not run or is not ${CODEX_CLI_VERSION}`)
    await writeFile(join(staging, '.complete'), `${CODEX_CLI_VERSION}\n`)
    try {
      await rename(staging, finalDir)
    } catch (err) {
      // someone else finished first: theirs is as good as ours
      if (!existsSync(join(finalDir, '.complete'))) throw err
    }
  } finally {
    await rm(staging, { recursive: true, force: true, maxRetries: 3 })
  }
}

async function ensureInstalled (): Promise<string> {
  const cacheDir = codexCacheDir()
  const finalDir = join(cacheDir, CODEX_CLI_VERSION)
  const lockDir = join(cacheDir, `${CODEX_CLI_VERSION}.lock`)
  const ready = (): boolean => existsSync(join(finalDir, '.complete'))
  await mkdir(cacheDir, { recursive: true })
  const deadline = Date.now() + INSTALL_TIMEOUT_MS + 120_000
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`codex-cli: gave up waiting for the install lock ${lockDir}`)
    let locked = false
    try {
      await mkdir(lockDir)
      locked = true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    if (!locked) {
      if (await lockIsStale(lockDir)) await rm(lockDir, { recursive: true, force: true })
      else await sleep(500)
      continue
    }
    try {
      await writeFile(join(lockDir, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname(), started: Date.now() }))
      if (!ready()) {
        // leftovers of installs that died (we hold the lock: nobody else is installing)
        for (const name of await readdir(cacheDir)) {
          if (name.startsWith('.staging-')) await rm(join(cacheDir, name), { recursive: true, force: true })
        }
        if (existsSync(finalDir)) await rm(finalDir, { recursive: true, force: true })
        await install(cacheDir, finalDir)
      }
    } finally {
      await rm(lockDir, { recursive: true, force: true })
    }
  }
  return findBinary(finalDir)
}

let installing: Promise<string> | undefined

/**
 * Path of the native `codex` binary of @openai/codex@CODEX_CLI_VERSION, installed on first use into
 * `.cache/codex-cli/<version>/` (npm install into a staging dir, renamed when complete; a lock dir
 * keeps concurrent processes from downloading twice).
 */
export async function ensureCodexCli (): Promise<string> {
  installing ??= ensureInstalled().catch((err: unknown) => {
    installing = undefined
    throw err
  })
  return await installing
}

export interface RunCodexExecOptions {
  /** Provider base URL, e.g. `http://127.0.0.1:PORT/v1`; the CLI posts to `${baseUrl}/responses`. */
  baseUrl: string
  prompt: string
  /** When set: `env_key` in the provider config, and the CLI sends `Authorization: Bearer <apiKey>`. */
  apiKey?: string
  /** Kill the CLI's process group after this long (default 60 s). */
  timeoutMs?: number
  extraEnv?: Record<string, string>
  /** `model_providers.codex_equilibrium.request_max_retries` (CLI default 4: 5xx retries per attempt). */
  requestMaxRetries?: number
  /** `model_providers.codex_equilibrium.stream_max_retries` (CLI default 5: retried attempts per turn). */
  streamMaxRetries?: number
  /** `model_providers.codex_equilibrium.stream_idle_timeout_ms` (CLI default 300000). */
  streamIdleTimeoutMs?: number
  /**
   * More `-c key=value` overrides; values are written as TOML (strings quoted). The CLI runs with
   * --strict-config, so an unknown key fails the run ("unknown configuration field").
   */
  config?: Record<string, string | number | boolean>
}

export interface CodexExecResult {
  code: number | null
  stdout: string
  stderr: string
  /** Contents of `--output-last-message`; null when the CLI wrote none or an empty one. */
  lastMessage: string | null
  /** True when the run was killed by timeoutMs. */
  timedOut: boolean
}

function tomlValue (v: string | number | boolean): string {
  // a JSON string is a valid TOML basic string
  return typeof v === 'string' ? JSON.stringify(v) : String(v)
}

/** Environment for the CLI: no credentials, proxies or Codex settings from the caller's shell. */
function cleanEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OPENAI_|CODEX_|AZURE_OPENAI|XDG_)/i.test(k)) continue
    if (/^(https?_proxy|all_proxy|no_proxy|rust_log)$/i.test(k)) continue
    env[k] = v
  }
  return env
}

/**
 * Runs one non-interactive turn: `codex exec --skip-git-repo-check ... <prompt>` with a fresh
 * CODEX_HOME (no login), HOME and cwd, the custom provider of protocol.md §4 pointed at baseUrl,
 * and everything that would reach the network other than baseUrl turned off.
 */
export async function runCodexExec (o: RunCodexExecOptions): Promise<CodexExecResult> {
  const bin = await ensureCodexCli()
  const base = await mkdtemp(join(tmpdir(), 'codex-exec-'))
  try {
    const codexHome = join(base, 'codex-home')
    const home = join(base, 'home')
    const cwd = join(base, 'work')
    const lastMessageFile = join(base, 'last-message.txt')
    await Promise.all([mkdir(codexHome), mkdir(home), mkdir(cwd)])

    const p = `model_providers.${CODEX_PROVIDER_ID}`
    const config: Record<string, string | number | boolean> = {
      ...HARDENING_CONFIG,
      model_provider: CODEX_PROVIDER_ID,
      [`${p}.name`]: CODEX_PROVIDER_ID,
      [`${p}.base_url`]: o.baseUrl,
      [`${p}.wire_api`]: 'responses'
    }
    if (o.apiKey !== undefined) config[`${p}.env_key`] = CODEX_API_KEY_ENV
    if (o.requestMaxRetries !== undefined) config[`${p}.request_max_retries`] = o.requestMaxRetries
    if (o.streamMaxRetries !== undefined) config[`${p}.stream_max_retries`] = o.streamMaxRetries
    if (o.streamIdleTimeoutMs !== undefined) config[`${p}.stream_idle_timeout_ms`] = o.streamIdleTimeoutMs
    Object.assign(config, o.config)

    const args = ['exec', '--skip-git-repo-check', '--dangerously-bypass-approvals-and-sandbox', '--strict-config',
      '--color', 'never', '--output-last-message', lastMessageFile]
    for (const [k, v] of Object.entries(config)) args.push('-c', `${k}=${tomlValue(v)}`)
    args.push('--', o.prompt)

    const env = cleanEnv()
    env.CODEX_HOME = codexHome
    env.HOME = home
    env.NO_COLOR = '1'
    if (o.apiKey !== undefined) env[CODEX_API_KEY_ENV] = o.apiKey
    Object.assign(env, o.extraEnv)

    const r = await run(bin, args, { cwd, env, timeoutMs: o.timeoutMs ?? 60_000, group: true })
    let lastMessage: string | null = null
    try {
      lastMessage = await readFile(lastMessageFile, 'utf8')
    } catch { /* not written */ }
    if (lastMessage === '') lastMessage = null
    return { code: r.code, stdout: r.stdout, stderr: r.stderr, lastMessage, timedOut: r.timedOut }
  } finally {
    await rm(base, { recursive: true, force: true, maxRetries: 3 })
  }
}
