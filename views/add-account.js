// @ts-check
/**
 * The four ways to add an account: sign in through the browser (the server runs the OAuth callback
 * listener), a device code (for servers no browser can reach), pasting the redirect address (when the
 * browser ended on a localhost page of another machine) and importing a Codex auth.json.
 */
import { api, ApiError } from './api.js'
import { byId, messageOf, part, say } from './dom.js'
import { localTime } from './format.js'

/**
 * @typedef {import('./account-card.js').AccountView} AccountView
 * @typedef {{ status: 'pending' | 'complete' | 'failed' | 'expired', account?: AccountView, error?: string }} LoginState
 */

/** @param {AccountView | undefined} account */
function addedText (account) {
  return account === undefined ? 'Signed in; the account is in the pool.' : `Signed in as ${account.email ?? account.id}; the account is in the pool.`
}

/**
 * Asks the server about a pending login until it is no longer pending. One watcher per flow: starting
 * again stops the previous one.
 */
class LoginWatcher {
  /**
   * @param {HTMLElement} message
   * @param {() => void} [onOver] called once the login is over, however it ended: what belonged to it goes away
   */
  constructor (message, onOver = () => {}) {
    this.message = message
    this.onOver = onOver
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined
    this.generation = 0
  }

  stop () {
    clearTimeout(this.timer)
    this.generation++
  }

  /**
   * @param {string} path
   * @param {number} everyMs
   * @param {string} expiresAt
   * @param {(account: AccountView | undefined) => void} onDone
   */
  watch (path, everyMs, expiresAt, onDone) {
    this.stop()
    const generation = this.generation
    const check = async () => {
      if (generation !== this.generation) return
      /** @type {LoginState | null} */
      let state = null
      try {
        state = await api('GET', path)
      } catch (err) {
        // A hiccup (server restarting, network) is not the end of a login; an unknown login is.
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
          if (err.status === 401) return
          this.onOver()
          return say(this.message, 'error', `Sign-in failed: ${err.message}`)
        }
        if (Date.now() > new Date(expiresAt).getTime()) {
          this.onOver()
          return say(this.message, 'error', 'The sign-in expired before it finished. Start again.')
        }
      }
      if (generation !== this.generation) return
      if (state?.status === 'complete') {
        this.onOver()
        say(this.message, 'ok', addedText(state.account))
        onDone(state.account)
        return
      }
      if (state?.status === 'failed' || state?.status === 'expired') this.onOver()
      if (state?.status === 'failed') return say(this.message, 'error', `Sign-in failed: ${state.error ?? 'no reason given'}`)
      if (state?.status === 'expired') return say(this.message, 'error', 'The sign-in expired before it finished. Start again.')
      this.timer = setTimeout(check, everyMs)
    }
    this.timer = setTimeout(check, everyMs)
  }
}

/** @param {{ onAdded: (account: AccountView | undefined) => void }} o */
export function setupAddAccount ({ onAdded }) {
  setupBrowserLogin(onAdded)
  setupDeviceLogin(onAdded)
  setupPastedUrl(onAdded)
  setupImport(onAdded)
}

/** @param {(account: AccountView | undefined) => void} onAdded */
function setupBrowserLogin (onAdded) {
  const button = byId('login-browser')
  const panel = byId('browser-login')
  const message = part(panel, 'message')
  const linkLine = part(panel, 'link-line')
  const link = /** @type {HTMLAnchorElement} */ (part(panel, 'link'))
  // A finished login's sign-in page can only fail: it must not stay on offer.
  const withdrawLink = () => {
    linkLine.hidden = true
    link.removeAttribute('href')
  }
  const watcher = new LoginWatcher(message, withdrawLink)

  button.addEventListener('click', async () => {
    watcher.stop()
    panel.hidden = false
    withdrawLink()
    // Opened inside the click so that popup blockers let it through; pointed at the issuer below.
    const tab = window.open('', '_blank')
    say(message, 'pending', 'Starting the sign-in…')
    /** @type {{ login_id: string, authorize_url: string, expires_at: string }} */
    let login
    try {
      login = await api('POST', '/auth/login')
    } catch (err) {
      tab?.close()
      say(message, 'error', `Could not start the sign-in: ${messageOf(err)}`)
      return
    }
    link.href = login.authorize_url
    linkLine.hidden = false
    const until = `by ${localTime(login.expires_at, Date.now())}`
    if (tab !== null) {
      tab.opener = null
      tab.location.href = login.authorize_url
      say(message, 'pending', `Sign in in the new window ${until}; this page updates by itself. If that window ends on a localhost page that does not load, paste its address below.`)
    } else {
      say(message, 'pending', `Your browser blocked the new window: open the sign-in page with the link below and sign in ${until}.`)
    }
    watcher.watch(`/auth/login/${encodeURIComponent(login.login_id)}`, 1000, login.expires_at, onAdded)
  })
}

/** @param {(account: AccountView | undefined) => void} onAdded */
function setupDeviceLogin (onAdded) {
  const button = byId('login-device')
  const panel = byId('device-login')
  const instructions = part(panel, 'instructions')
  const link = /** @type {HTMLAnchorElement} */ (part(panel, 'link'))
  const code = part(panel, 'code')
  const message = part(panel, 'message')
  // Once the login is over, however it ended, its code and link are of no use: they go.
  const withdrawCode = () => {
    code.hidden = true
    instructions.hidden = true
  }
  const watcher = new LoginWatcher(message, withdrawCode)

  button.addEventListener('click', async () => {
    watcher.stop()
    panel.hidden = false
    instructions.hidden = true
    code.hidden = true
    say(message, 'pending', 'Asking for a device code…')
    /** @type {{ id: string, user_code: string, verification_url: string, interval: number | string, expires_at: string }} */
    let device
    try {
      device = await api('POST', '/auth/device')
    } catch (err) {
      say(message, 'error', `Could not get a device code: ${messageOf(err)}`)
      return
    }
    link.href = device.verification_url
    link.textContent = device.verification_url
    code.textContent = device.user_code
    instructions.hidden = false
    code.hidden = false
    say(message, 'pending', `Waiting for the code to be entered (valid until ${localTime(device.expires_at, Date.now())}); this page updates by itself.`)
    const everyMs = Math.max(1, Number(device.interval) || 5) * 1000
    watcher.watch(`/auth/device/${encodeURIComponent(device.id)}`, everyMs, device.expires_at, onAdded)
  })
}

/** @param {(account: AccountView | undefined) => void} onAdded */
function setupPastedUrl (onAdded) {
  const form = /** @type {HTMLFormElement} */ (byId('paste-form'))
  const input = /** @type {HTMLInputElement} */ (byId('paste-url'))
  const result = byId('paste-result')

  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    say(result, 'pending', 'Finishing the sign-in…')
    try {
      /** @type {{ account: AccountView }} */
      const answer = await api('POST', '/auth/callback-url', { url: input.value.trim() })
      // The address holds a one-time code: no reason to keep it on screen.
      input.value = ''
      say(result, 'ok', addedText(answer.account))
      onAdded(answer.account)
    } catch (err) {
      say(result, 'error', `That did not work: ${messageOf(err)}`)
    }
  })
}

/** @param {(account: AccountView | undefined) => void} onAdded */
function setupImport (onAdded) {
  const form = /** @type {HTMLFormElement} */ (byId('import-form'))
  const file = /** @type {HTMLInputElement} */ (byId('import-file'))
  const text = /** @type {HTMLTextAreaElement} */ (byId('import-text'))
  const result = byId('import-result')

  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const chosen = file.files?.[0]
    const source = text.value.trim() !== '' ? text.value : chosen !== undefined ? await chosen.text() : ''
    if (source.trim() === '') return say(result, 'error', 'Choose a file or paste its contents first.')
    let body
    try {
      body = JSON.parse(source)
    } catch {
      return say(result, 'error', 'That is not JSON: paste the whole auth.json.')
    }
    say(result, 'pending', 'Importing…')
    try {
      /** @type {AccountView} */
      const account = await api('POST', '/accounts/import', body)
      // Tokens should not linger in the page once the server has them.
      form.reset()
      say(result, 'ok', `Imported ${account.email ?? account.id}.`)
      onAdded(account)
    } catch (err) {
      say(result, 'error', `Import failed: ${messageOf(err)}`)
    }
  })
}
