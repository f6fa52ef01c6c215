// @ts-check
/** The last management actions (`GET /audit`): what was done, to which account, by whom, from where. */
import { api } from './api.js'
import { byId } from './dom.js'
import { fullTime, localTime } from './format.js'

/**
 * @typedef {object} AuditEntry
 * @property {string} at
 * @property {string} action
 * @property {{ via: 'admin_token' | 'local', remote: string }} actor
 * @property {{ id: string, email: string | null }} [account]
 * @property {string} [key]
 * @property {Record<string, string | number | boolean | null>} [details]
 */

const SHOWN = 20

/** @type {Record<string, string>} */
const WORDS = {
  account_import: 'Imported',
  account_delete: 'Removed',
  account_enable: 'Enabled',
  account_select: 'Made current',
  account_refresh: 'Refreshed token',
  account_update: 'Changed',
  login_completed: 'Signed in',
  key_create: 'Created key',
  key_delete: 'Deleted key'
}

/** @param {AuditEntry} entry */
function describe (entry) {
  const what = WORDS[entry.action] ?? entry.action
  const subject = entry.account !== undefined ? entry.account.email ?? entry.account.id : entry.key ?? ''
  const result = entry.details?.result
  return `${what} ${subject}${typeof result === 'string' && result !== 'ok' ? ` (${result.replace('_', ' ')})` : ''}`.trim()
}

/** Fetches the newest entries and shows them; failures leave the last list (the account poll reports the connection). */
export async function refreshAudit () {
  const list = byId('audit')
  let entries
  try {
    entries = /** @type {AuditEntry[]} */ (await api('GET', `/audit?limit=${SHOWN}`))
  } catch {
    return
  }
  byId('no-audit').hidden = entries.length > 0
  const now = Date.now()
  list.replaceChildren(...entries.map((entry) => {
    const item = document.createElement('li')
    const time = document.createElement('time')
    time.dateTime = entry.at
    time.title = fullTime(entry.at)
    time.textContent = localTime(entry.at, now)
    const text = document.createElement('span')
    text.textContent = describe(entry)
    const who = document.createElement('span')
    who.className = 'muted'
    who.textContent = `${entry.actor.via === 'admin_token' ? 'admin token' : 'local'} · ${entry.actor.remote}`
    item.append(time, ' ', text, ' ', who)
    return item
  }))
}
