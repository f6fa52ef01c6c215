// @ts-check
/** The client keys: the list, a form to make one (its secret is shown once), delete buttons. */
import { api } from './api.js'
import { byId, messageOf, say } from './dom.js'
import { localTime } from './format.js'

/**
 * @typedef {object} KeyView
 * @property {string} id
 * @property {string} name
 * @property {boolean} fixed
 * @property {string | null} last_used_at
 * @property {string | null} expires_at
 * @property {number | null} daily_token_limit
 * @property {number} tokens_today
 */

const page = {
  body: byId('keys-body'),
  none: byId('no-keys'),
  form: /** @type {HTMLFormElement} */ (byId('key-form')),
  name: /** @type {HTMLInputElement} */ (byId('key-name')),
  limit: /** @type {HTMLInputElement} */ (byId('key-limit')),
  expires: /** @type {HTMLInputElement} */ (byId('key-expires')),
  secret: byId('key-secret'),
  secretValue: byId('key-secret-value'),
  result: byId('keys-result')
}

export async function refreshKeys () {
  const keys = /** @type {KeyView[]} */ (await api('GET', '/keys'))
  const now = Date.now()
  page.body.replaceChildren(...keys.map((key) => {
    const row = document.createElement('tr')
    const texts = [
      key.name,
      key.daily_token_limit === null ? key.tokens_today.toLocaleString() : `${key.tokens_today.toLocaleString()} / ${key.daily_token_limit.toLocaleString()}`,
      key.last_used_at === null ? 'never' : localTime(key.last_used_at, now),
      key.expires_at === null ? 'never' : localTime(key.expires_at, now)
    ]
    for (const text of texts) {
      const cell = document.createElement('td')
      cell.textContent = text
      row.append(cell)
    }
    const actions = document.createElement('td')
    if (key.fixed) {
      actions.textContent = 'from --api-key'
      actions.className = 'muted'
    } else {
      const remove = document.createElement('button')
      remove.type = 'button'
      remove.className = 'danger'
      remove.textContent = 'Delete'
      remove.setAttribute('aria-label', `Delete key ${key.name}`)
      remove.addEventListener('click', () => { void removeKey(key) })
      actions.append(remove)
    }
    row.append(actions)
    return row
  }))
  page.none.hidden = keys.length > 0
}

/** @param {KeyView} key */
async function removeKey (key) {
  try {
    await api('DELETE', `/keys/${encodeURIComponent(key.id)}`)
    say(page.result, 'ok', `Deleted key ${key.name}: clients presenting it are refused from now on.`)
  } catch (err) {
    say(page.result, 'error', `Delete failed: ${messageOf(err)}`)
  }
  await refreshKeys()
}

export function setupKeys () {
  page.form.addEventListener('submit', (event) => {
    event.preventDefault()
    void createKey()
  })
}

async function createKey () {
  /** @type {{ name: string, daily_token_limit?: number, expires_at?: string }} */
  const body = { name: page.name.value.trim() }
  if (page.limit.value !== '') body.daily_token_limit = Number(page.limit.value)
  if (page.expires.value !== '') body.expires_at = new Date(`${page.expires.value}T23:59:59`).toISOString()
  page.secret.hidden = true
  try {
    const made = await api('POST', '/keys', body)
    page.secretValue.textContent = made.secret
    page.secret.hidden = false
    say(page.result, 'ok', `Created key ${made.name}. Copy its secret now: it is not shown again.`)
    page.form.reset()
  } catch (err) {
    say(page.result, 'error', `Could not create the key: ${messageOf(err)}`)
  }
  await refreshKeys()
}
