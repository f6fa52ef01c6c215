// @ts-check
/** The "recent requests" table: the last requests the proxy answered, newest first. */
import { api } from './api.js'
import { byId } from './dom.js'
import { localTime } from './format.js'

/**
 * @typedef {object} RecentRequest
 * @property {string} at
 * @property {string} key
 * @property {string | null} account
 * @property {string | null} model
 * @property {number} status
 * @property {number} attempts
 * @property {number | null} tokens
 * @property {number} ms
 */

const SHOWN = 50

/** @param {(id: string) => string} accountName */
export async function refreshRecent (accountName) {
  const entries = /** @type {RecentRequest[]} */ (await api('GET', `/requests/recent?limit=${SHOWN}`))
  const body = byId('recent-body')
  const now = Date.now()
  body.replaceChildren(...entries.map((entry) => {
    const row = document.createElement('tr')
    const cells = [
      localTime(entry.at, now),
      entry.key,
      entry.account === null ? '-' : accountName(entry.account),
      entry.model ?? '-',
      String(entry.status),
      String(entry.attempts),
      entry.tokens === null ? '-' : entry.tokens.toLocaleString(),
      `${entry.ms} ms`
    ]
    for (const text of cells) {
      const cell = document.createElement('td')
      cell.textContent = text
      row.append(cell)
    }
    row.dataset.status = entry.status < 400 ? 'ok' : 'error'
    return row
  }))
  byId('no-recent').hidden = entries.length > 0
}
