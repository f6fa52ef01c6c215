import { createInterface } from 'node:readline'
import type { Command } from 'commander'
import open from 'open'
import { loadConfig } from '../config.js'
import { BrowserLogins } from '../login/browser-logins.js'
import { DeviceLogins } from '../login/device-logins.js'
import { LoginError } from '../login/login-error.js'
import type { LoginState } from '../login/login-records.js'
import { OAuthClient } from '../tokens/oauth-client.js'
import { addTargetOptions, describeAccount, openTarget, type AccountsTarget, type ImportedAccount } from './accounts-target.js'
import { UserError, exitWith } from './user-error.js'

interface LoginFlags extends Record<string, unknown> {
  server?: string
  device?: boolean
  open: boolean
}

export function registerLogin (program: Command): void {
  const login = program
    .command('login')
    .summary('sign in to a ChatGPT account and add it to the pool')
    .description('Sign in to a ChatGPT account on OpenAI\'s own page and add it to the pool.\n\n' +
      'The browser sign-in comes back to http://localhost:1455 on this machine, where this command listens for a moment. ' +
      'Without --server the account goes into the local auths dir (which no running server may be using); ' +
      'with --server it goes to that codex-eq server, so you can sign in on your laptop and add the account to a headless server.')
    .option('--device', 'sign in by typing a short code on OpenAI\'s device page, on any device (for machines without a browser)')
    .option('--no-open', 'print the sign-in URL instead of opening a browser')
  addTargetOptions(login, ['issuer', 'callbackPort'])
  login.addHelpText('after', '\nExamples:\n' +
    '  codex-eq login                                       sign in here, add the account to ./auths\n' +
    '  codex-eq login --server http://my-server:1456        sign in on this laptop, add it to a remote server\n' +
    '  codex-eq login --device --server http://my-server:1456   no browser here: type a code on your phone\n' +
    '\nA server with an admin token needs it here too: --admin-token or CODEX_EQ_ADMIN_TOKEN.\n' +
    'Signing in to an account that is already in the pool updates its tokens.')
  login.action(async (flags: LoginFlags) => {
    try {
      const config = loadConfig(flags, process.env, ['issuer', 'callbackPort'])
      const target = await openTarget(flags, 'write')
      let outcome: LoginState<ImportedAccount>
      try {
        const oauth = new OAuthClient(config.issuer)
        outcome = flags.device === true
          ? await deviceLogin(oauth, target)
          : await browserLogin(oauth, target, { callbackPort: config.callbackPort, open: flags.open, backUrl: typeof flags.server === 'string' ? target.where : null })
      } finally {
        await target.close()
      }
      if (outcome.status !== 'complete' || outcome.result === undefined) throw new UserError(`sign-in ${outcome.status}: ${outcome.error ?? 'no account'}`)
      const { view, created } = outcome.result
      process.stdout.write(`${created ? 'added' : 'updated'} account ${describeAccount(view)} in ${target.where}\n`)
    } catch (err) {
      exitWith(err)
    }
  })
}

async function browserLogin (oauth: OAuthClient, target: AccountsTarget, o: { callbackPort: number, open: boolean, backUrl: string | null }): Promise<LoginState<ImportedAccount>> {
  const logins = new BrowserLogins<ImportedAccount>({
    oauth,
    callbackPort: o.callbackPort,
    // Loaded only for a browser sign-in: Fastify is not needed by the rest of the CLI.
    serve: async (port, routes) => await (await import('../../plugins/oauth.js')).serveCallbacks(port, routes),
    store: async (tokens) => await target.importTokens(tokens),
    describe: ({ view }) => view.email ?? view.id,
    backUrl: () => o.backUrl === null ? null : `${o.backUrl}/`
  })
  try {
    const login = await logins.start()
    const opening = o.open && canOpenBrowser()
    const port = new URL(new URL(login.authorizeUrl).searchParams.get('redirect_uri')!).port
    process.stderr.write(`Sign in to the ChatGPT account to add${opening ? ' (opening your browser)' : ', in a browser on this machine'}:\n\n  ${login.authorizeUrl}\n\n` +
      `The sign-in comes back to http://localhost:${port}/auth/callback here. If your browser is on another machine, it\n` +
      'ends on a page that cannot be reached: copy that page\'s address, paste it here and press Enter.\n' +
      'Waiting up to 10 minutes (Ctrl-C gives up)…\n')
    if (opening) void open(login.authorizeUrl).then((child) => child.on('error', () => {}), () => {})
    const pasted = acceptPastedUrls(async (line) => {
      await logins.completeFromUrl(line)
    })
    try {
      return await logins.records.wait(login.id)
    } finally {
      pasted.close()
    }
  } finally {
    await logins.close()
  }
}

async function deviceLogin (oauth: OAuthClient, target: AccountsTarget): Promise<LoginState<ImportedAccount>> {
  const devices = new DeviceLogins<ImportedAccount>({ oauth, store: async (tokens) => await target.importTokens(tokens) })
  try {
    const device = await devices.start()
    process.stderr.write(`To sign in, open ${device.verificationUrl} on any device, sign in, and enter this code:\n\n  ${device.userCode}\n\n` +
      'The code is valid for 15 minutes. Waiting (Ctrl-C gives up)…\n')
    return await devices.records.wait(device.id)
  } finally {
    devices.close()
  }
}

/** Whether `open` can show a browser: not on a Linux machine without a display (it would start a text browser in this terminal). */
function canOpenBrowser (): boolean {
  return process.platform !== 'linux' || (process.env.DISPLAY ?? '') !== '' || (process.env.WAYLAND_DISPLAY ?? '') !== ''
}

/** Reads redirect URLs pasted on stdin; a bad one is reported and the wait goes on. */
function acceptPastedUrls (complete: (line: string) => Promise<void>): { close: () => void } {
  const lines = createInterface({ input: process.stdin, terminal: false })
  lines.on('line', (line) => {
    if (line.trim() === '') return
    complete(line).catch((err: unknown) => {
      // Failures that end the login are reported once, by the login's outcome.
      if (err instanceof LoginError && (err.kind === 'invalid_url' || err.kind === 'unknown_state')) process.stderr.write(`codex-eq: ${err.message}\n`)
    })
  })
  return {
    close: () => {
      lines.close()
      process.stdin.unref?.()
    }
  }
}
