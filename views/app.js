// @ts-check
/**
 * The dashboard: asks for the admin token when the server wants one, then polls the pool every two
 * seconds and keeps one card per account up to date; the clock-bound texts tick every second.
 */
import { api, ApiError, forgetToken, hasToken, storeToken, whenUnauthorized } from './api.js'
import { AccountCard } from './account-card.js'
import { setupAddAccount } from './add-account.js'
import { refreshAudit } from './audit-panel.js'
import { showCodexPanel } from './codex-panel.js'
import { byId, messageOf, say } from './dom.js'
import { localTime } from './format.js'
import { refreshKeys, setupKeys } from './keys-panel.js'
import { refreshRecent } from './recent-requests.js'
import { nameAccountsWith, refreshCharts } from './usage-charts.js'

/** @typedef {import('./account-card.js').AccountView} AccountView */
/** @typedef {import('./account-card.js').Action} Action */

const POLL_MS = 2000
/** A tab in the background needs no fresh figures; it catches up the moment it is shown. */
const HIDDEN_POLL_MS = 15000
/** The charts are of hours and days: redrawn every fifteenth poll. */
const CHART_EVERY = 15

const page = {
  version: byId('version'),
  live: byId('live'),
  offline: byId('offline'),
  unlock: byId('unlock'),
  unlockForm: /** @type {HTMLFormElement} */ (byId('unlock-form')),
  unlockToken: /** @type {HTMLInputElement} */ (byId('unlock-token')),
  unlockResult: byId('unlock-result'),
  dashboard: byId('dashboard'),
  summary: byId('summary'),
  accountsHeading: byId('accounts-heading'),
  accountsResult: byId('accounts-result'),
  noAccounts: byId('no-accounts'),
  accounts: byId('accounts'),
  usageResult: byId('usage-result')
}

/** @type {Map<string, AccountCard>} */
const cards = new Map()
let locked = false
let started = false
/** @type {ReturnType<typeof setTimeout> | undefined} */
let pollTimer
let pollsSent = 0
let newestShown = 0

// ---- admin token ----

function lock () {
  const refused = hasToken()
  forgetToken()
  locked = true
  clearTimeout(pollTimer)
  page.dashboard.hidden = true
  page.offline.hidden = true
  page.unlock.hidden = false
  page.live.textContent = 'Locked'
  page.live.dataset.state = 'locked'
  say(page.unlockResult, 'error', refused ? 'The server refused that admin token.' : '')
  page.unlockToken.value = ''
  page.unlockToken.focus()
}

page.unlockForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const token = page.unlockToken.value.trim()
  if (token === '') return
  storeToken(token)
  page.unlockToken.value = ''
  page.unlockResult.textContent = ''
  locked = false
  page.unlock.hidden = true
  void start()
})

// ---- live data ----

/** @param {string | null} problem */
function showConnection (problem) {
  page.offline.hidden = problem === null
  if (problem !== null) page.offline.textContent = `Lost contact with the server (${problem}); retrying every few seconds.`
  page.live.textContent = problem === null ? `Live · updated ${new Date().toLocaleTimeString()}` : 'Offline'
  page.live.dataset.state = problem === null ? 'live' : 'offline'
}

async function poll () {
  clearTimeout(pollTimer)
  if (locked) return
  const sent = ++pollsSent
  try {
    const views = /** @type {AccountView[]} */ (await api('GET', '/accounts'))
    // Polls can overlap (an action asks for one at once); never let an older answer win.
    if (sent > newestShown) {
      newestShown = sent
      render(views)
    }
    void refreshAudit()
    await refreshPanels(sent)
    showConnection(null)
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return
    showConnection(messageOf(err))
  }
  if (!locked) {
    clearTimeout(pollTimer)
    pollTimer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS)
  }
}

/** How an account id reads on the page: its email when the pool knows it. */
/** @param {string} id */
function accountName (id) {
  return cards.get(id)?.name ?? id
}

/**
 * The keys and recent requests every poll, the charts now and then.
 * @param {number} sent
 */
async function refreshPanels (sent) {
  await Promise.all([refreshKeys(), refreshRecent(accountName)])
  if ((sent - 1) % CHART_EVERY !== 0) return
  try {
    await refreshCharts()
    page.usageResult.textContent = ''
  } catch (err) {
    say(page.usageResult, 'error', `Could not draw the charts: ${messageOf(err)}`)
  }
}

/** @param {AccountView[]} views */
function render (views) {
  const now = Date.now()
  const present = new Set()
  /** @type {Element | null} */
  let previous = null
  for (const view of views) {
    let card = cards.get(view.id)
    if (card === undefined) {
      card = new AccountCard(view, act)
      cards.set(view.id, card)
    }
    card.update(view, now)
    /** @type {Element | null} */
    const expected = previous === null ? page.accounts.firstElementChild : previous.nextElementSibling
    // Only move what is out of place: moving an element takes the keyboard focus from it.
    if (expected !== card.element) page.accounts.insertBefore(card.element, expected)
    previous = card.element
    present.add(view.id)
  }
  for (const [id, card] of cards) {
    if (present.has(id)) continue
    card.element.remove()
    cards.delete(id)
  }
  page.noAccounts.hidden = views.length > 0
  page.summary.textContent = summaryOf(views, now)
}

/**
 * @param {AccountView[]} views
 * @param {number} now
 */
function summaryOf (views, now) {
  if (views.length === 0) return 'No accounts in the pool yet.'
  const usable = views.filter((view) => view.status === 'active')
  const serving = usable.find((view) => view.current)
  const parts = [`${views.length} ${views.length === 1 ? 'account' : 'accounts'}`, `${usable.length} usable`]
  if (serving !== undefined) parts.push(`serving: ${serving.email ?? serving.id}`)
  if (usable.length === 0) {
    const resets = views.map((view) => view.disabled_until).filter((until) => until !== null).sort()
    parts.push(resets.length > 0
      ? `requests get “usage limit reached” until ${localTime(/** @type {string} */ (resets[0]), now)}`
      : 'requests get “usage limit reached” until an account is fixed')
  }
  return parts.join(' · ')
}

// ---- actions ----

const ACTIONS = {
  refresh: { busy: 'Refreshing the token…', failed: 'Refresh failed' },
  enable: { busy: 'Enabling…', failed: 'Enable failed' },
  select: { busy: 'Switching…', failed: 'Could not make it current' },
  remove: { busy: 'Removing…', failed: 'Remove failed' },
  proxy: { busy: 'Saving the proxy…', failed: 'Proxy not saved' }
}

/**
 * @param {Action} action
 * @param {AccountCard} card
 */
async function act (action, card) {
  const id = encodeURIComponent(card.view.id)
  const name = card.name
  card.setBusy(true, ACTIONS[action].busy)
  try {
    if (action === 'proxy') {
      const view = /** @type {AccountView} */ (await api('PATCH', `/accounts/${id}`, { proxy: card.proxyValue }))
      card.update(view, Date.now())
      card.closeProxyForm()
      card.showResult('ok', view.proxy === null ? 'Connects directly.' : `Goes through ${view.proxy}.`)
    } else if (action === 'remove') {
      await api('DELETE', `/accounts/${id}`)
      card.element.remove()
      cards.delete(card.view.id)
      say(page.accountsResult, 'ok', `Removed ${name}.`)
      page.accountsHeading.focus()
    } else {
      const view = /** @type {AccountView} */ (await api('POST', `/accounts/${id}/${action}`))
      card.update(view, Date.now())
      card.showResult('ok', action === 'refresh'
        ? `Token refreshed${view.expire === null ? '' : `; it expires at ${localTime(view.expire, Date.now())}`}.`
        : action === 'enable' ? 'Enabled: it serves again when its turn comes.' : `${name} serves the next requests.`)
    }
  } catch (err) {
    card.showResult('error', `${ACTIONS[action].failed}: ${messageOf(err)}`)
  } finally {
    card.setBusy(false)
    // Polls already under way may predate the change (a removed card would come back for a moment).
    newestShown = pollsSent
    void poll()
  }
}

// ---- start ----

async function start () {
  let info
  try {
    info = await api('GET', '/info')
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return
    showConnection(messageOf(err))
    pollTimer = setTimeout(start, POLL_MS)
    return
  }
  page.version.textContent = `v${info.version}`
  showCodexPanel(info)
  page.dashboard.hidden = false
  if (!started) {
    started = true
    setupAddAccount({ onAdded: () => { void poll() } })
    setupKeys()
    nameAccountsWith(accountName)
    setInterval(() => {
      const now = Date.now()
      for (const card of cards.values()) card.tick(now)
    }, 1000)
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) void poll()
    })
  }
  await poll()
}

whenUnauthorized(lock)
void start()
