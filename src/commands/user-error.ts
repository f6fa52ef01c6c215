import { AuthFileError } from '../tokens/auth-file.js'
import { LoginError } from '../login/login-error.js'
import { failWith } from './serve.js'

/** A failure the user can act on (unreachable server, wrong token, unknown account…), told in one line. */
export class UserError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UserError'
  }
}

/** One line on stderr and exit 1 for failures the user can act on; settings and store errors go to failWith. */
export function exitWith (err: unknown): never {
  if (err instanceof UserError || err instanceof LoginError || err instanceof AuthFileError) {
    process.stderr.write(`codex-eq: ${err.message}\n`)
    process.exit(1)
  }
  return failWith(err)
}
