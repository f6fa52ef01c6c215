import type { Command } from 'commander'
import { loadConfig } from '../config.js'
import { addSettingOptions } from './serve.js'
import { ServerClient, parseServerUrl } from './server-client.js'
import { UserError, exitWith } from './user-error.js'

export type Flags = Record<string, unknown>

export const DEFAULT_SERVER = 'http://127.0.0.1:1456'

/** `--server <url>` (default the local server) and `--admin-token`, for a command that only talks to a running server. */
export function withServer (command: Command, what: string): Command {
  command.option('--server <url>', `the codex-eq server holding the ${what} (default ${DEFAULT_SERVER})`)
  return addSettingOptions(command, ['adminToken'])
}

/** Runs `work` against the server `--server` names, with the admin token from the flags or the environment; failures end in one line. */
export async function run (flags: Flags, work: (server: ServerClient) => Promise<void>): Promise<void> {
  try {
    const config = loadConfig(flags, process.env, ['adminToken'])
    await work(new ServerClient(parseServerUrl(typeof flags.server === 'string' ? flags.server : DEFAULT_SERVER), config.adminToken))
  } catch (err) {
    exitWith(err)
  }
}

/** What a read command prints: the answer as JSON with `--json`, else as `format` makes it readable. */
export function printAnswer<T> (flags: Flags, answer: T, format: (answer: T) => string): void {
  process.stdout.write(flags.json === true ? JSON.stringify(answer, null, 2) + '\n' : format(answer))
}

/** `--limit`: a whole number from 1 to 1000, as the server takes it; undefined when not given. */
export function readLimit (flags: Flags): string | undefined {
  if (typeof flags.limit !== 'string') return undefined
  if (!/^\d+$/.test(flags.limit) || Number(flags.limit) < 1 || Number(flags.limit) > 1000) throw new UserError(`--limit "${flags.limit}" is not a number from 1 to 1000`)
  return flags.limit
}
