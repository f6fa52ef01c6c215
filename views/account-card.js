// @ts-check
/**
 * One account on the page. A card is built once per account and updated in place on every poll,
 * so keyboard focus, a pending confirmation and the last action's message survive the updates.
 */
import { part, say } from './dom.js'
import { countdown, fullTime, localTime, relative, windowName } from './format.js'

/**
 * @typedef {{ used_percent: number | null, window_minutes: number | null, resets_at: string | null }} QuotaWindow
 * @typedef {{
 *   id: string, email: string | null, account_id: string, plan: string | null, expire: string | null,
 *   status: 'active' | 'cooling' | 'disabled' | 'resting' | 'needs_login', current: boolean,
 *   disabled_until: string | null, disabled_source: string | null, reason: string | null,
 *   last_error: string | null, last_error_at: string | null, last_used: string | null, requests: number,
 *   limits?: Array<{ family: string, name: string, models: string[], until: string, source: string }>,
 *   quota: { primary: QuotaWindow | null, secondary: QuotaWindow | null, plan_type: string | null } | null,
 *   proxy?: string | null
 * }} AccountView
 * @typedef {'refresh' | 'enable' | 'select' | 'remove' | 'proxy'} Action
 */

/** Where a rest's end time came from, in words. */
const SOURCES = /** @type {Record<string, string>} */ ({
  cooldown: 'resting for the configured cooldown after repeated failures',
  upstream: 'a short rest: the upstream failed, not the account; it is tried again by itself',
  issuer: 'a short rest: the sign-in service could not be reached to renew its token; it is tried again by itself',
  refresh: 'the refresh token was refused'
})

/**
 * @param {HTMLElement} element
 * @param {string} text
 * @param {string | null} [title]
 */
function setText (element, text, title = null) {
  if (element.textContent !== text) element.textContent = text
  if (title === null) element.removeAttribute('title')
  else element.title = title
}

export class AccountCard {
  /**
   * @param {AccountView} view
   * @param {(action: Action, card: AccountCard) => void} onAction
   */
  constructor (view, onAction) {
    const template = document.getElementById('account-template')
    if (!(template instanceof HTMLTemplateElement) || !(template.content.firstElementChild instanceof HTMLElement)) throw new Error('no account template')
    this.element = /** @type {HTMLElement} */ (template.content.firstElementChild.cloneNode(true))
    this.view = view
    this.busy = false

    const headingId = `account-${view.id}-name`
    this.heading = part(this.element, 'email')
    this.heading.id = headingId
    this.element.dataset.id = view.id
    this.element.setAttribute('aria-labelledby', headingId)
    for (const button of this.element.querySelectorAll('button')) button.setAttribute('aria-describedby', headingId)

    this.buttons = {
      enable: this.button('enable'),
      select: this.button('select'),
      remove: this.button('remove'),
      cancel: this.button('remove-cancelled')
    }
    this.confirm = part(this.element, 'confirm')
    this.result = part(this.element, 'result')
    this.proxyForm = /** @type {HTMLFormElement} */ (part(this.element, 'proxy-form'))
    this.proxyInput = /** @type {HTMLInputElement} */ (part(this.element, 'proxy-input'))
    this.proxyForm.addEventListener('submit', (event) => {
      event.preventDefault()
      if (!this.busy) onAction('proxy', this)
    })

    this.element.addEventListener('click', (event) => {
      const target = event.target instanceof Element ? event.target.closest('button[data-action]') : null
      if (!(target instanceof HTMLButtonElement) || this.busy) return
      switch (target.dataset.action) {
        case 'remove': this.askToRemove(); break
        case 'remove-cancelled': this.closeConfirm(this.buttons.remove); break
        case 'remove-confirmed': this.closeConfirm(null); onAction('remove', this); break
        case 'proxy-edit': this.openProxyForm(); break
        case 'proxy-cancel': this.closeProxyForm(); break
        case 'refresh': case 'enable': case 'select': onAction(target.dataset.action, this); break
      }
    })
    this.confirm.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.closeConfirm(this.buttons.remove)
    })
  }

  /** @param {string} action */
  button (action) {
    const button = this.element.querySelector(`button[data-action="${action}"]`)
    if (!(button instanceof HTMLButtonElement)) throw new Error(`the account template has no ${action} button`)
    return button
  }

  get name () {
    return this.view.email ?? this.view.id
  }

  askToRemove () {
    setText(part(this.element, 'confirm-text'), `Remove ${this.name} from the pool? Its tokens are deleted from this server.`)
    this.confirm.hidden = false
    this.buttons.cancel.focus()
  }

  /** @param {HTMLElement | null} focusTo */
  closeConfirm (focusTo) {
    this.confirm.hidden = true
    focusTo?.focus()
  }

  /** The field starts empty: the shown proxy is masked, and saving it back would lose the password. */
  openProxyForm () {
    this.proxyInput.value = ''
    this.proxyForm.hidden = false
    this.proxyInput.focus()
  }

  closeProxyForm () {
    this.proxyForm.hidden = true
    this.button('proxy-edit').focus()
  }

  /** What to send: the typed proxy, or null (connect directly) for an empty field. */
  get proxyValue () {
    const text = this.proxyInput.value.trim()
    return text === '' ? null : text
  }

  /**
   * @param {boolean} busy
   * @param {string} [message]
   */
  setBusy (busy, message) {
    this.busy = busy
    this.element.setAttribute('aria-busy', String(busy))
    // aria-disabled rather than disabled: a disabled button drops the keyboard focus.
    for (const button of this.element.querySelectorAll('button')) button.setAttribute('aria-disabled', String(busy))
    if (message !== undefined) this.showResult('pending', message)
  }

  /**
   * @param {'ok' | 'error' | 'pending'} kind
   * @param {string} text
   */
  showResult (kind, text) {
    say(this.result, kind, text)
  }

  /**
   * @param {AccountView} view
   * @param {number} now
   */
  update (view, now) {
    this.view = view
    const focused = document.activeElement
    setText(this.heading, this.name, view.email === null ? null : `ChatGPT account ${view.account_id}`)
    setText(part(this.element, 'plan'), view.plan ?? view.quota?.plan_type ?? '')

    const resting = view.status === 'cooling' || view.status === 'disabled' || view.status === 'resting'
    this.buttons.enable.hidden = !resting
    this.buttons.select.hidden = view.status !== 'active' || view.current
    this.element.dataset.status = view.current && view.status === 'active' ? 'serving' : view.status

    const reason = part(this.element, 'reason')
    reason.hidden = view.reason === null
    if (view.reason !== null) {
      const source = view.disabled_source === null ? '' : ` (${SOURCES[view.disabled_source] ?? `reset time from ${view.disabled_source}`})`
      setText(reason, `Reason: ${view.reason}${source}`)
    }

    const limits = part(this.element, 'limits')
    const modelLimits = view.limits ?? []
    limits.hidden = modelLimits.length === 0
    if (modelLimits.length > 0) {
      setText(limits, modelLimits.map((limit) => `Usage limit for ${limit.name} (${limit.models.join(', ')}) until ${localTime(limit.until, now)}: other models are served`).join(' · '))
    }

    part(this.element, 'no-quota').hidden = view.quota !== null && (view.quota.primary !== null || view.quota.secondary !== null)
    setText(part(this.element, 'requests'), String(view.requests))
    setText(part(this.element, 'proxy'), view.proxy ?? 'None (direct)')
    this.tick(now)

    // A button that just disappeared (e.g. "Enable now" once enabled) must not take the focus with it.
    if (focused instanceof HTMLElement && this.element.contains(focused) && focused.offsetParent === null) this.heading.focus()
  }

  /**
   * Everything that depends on the clock: countdowns, "in 5 min", "3 min ago".
   * @param {number} now
   */
  tick (now) {
    const view = this.view
    setText(part(this.element, 'badge'), this.badgeText(now))
    this.showWindow('primary', view.quota?.primary ?? null, '5 h window', now)
    this.showWindow('secondary', view.quota?.secondary ?? null, 'Weekly window', now)

    const expire = part(this.element, 'expire')
    if (view.expire === null) setText(expire, 'Unknown')
    else {
      const past = new Date(view.expire).getTime() <= now
      setText(expire, `${past ? 'Expired' : ''} ${relative(view.expire, now)} · ${localTime(view.expire, now)}`.trim(), fullTime(view.expire))
    }
    const lastUsed = part(this.element, 'last-used')
    if (view.last_used === null) setText(lastUsed, 'Never')
    else setText(lastUsed, relative(view.last_used, now), fullTime(view.last_used))
    const lastError = part(this.element, 'last-error')
    if (view.last_error === null) setText(lastError, 'None')
    else setText(lastError, view.last_error_at === null ? view.last_error : `${view.last_error} · ${relative(view.last_error_at, now)}`, view.last_error_at === null ? null : fullTime(view.last_error_at))
  }

  /** @param {number} now */
  badgeText (now) {
    const view = this.view
    switch (view.status) {
      case 'active': return view.current ? 'Serving now' : 'Active'
      case 'needs_login': return 'Needs login'
      case 'cooling':
      case 'disabled':
      case 'resting': {
        const word = { cooling: 'Cooling', disabled: 'Disabled', resting: 'Resting briefly' }[view.status]
        if (view.disabled_until === null) return word
        const left = new Date(view.disabled_until).getTime() - now
        return left > 0 ? `${word} until ${localTime(view.disabled_until, now)} · ${countdown(left)} left` : `${word} · back any moment`
      }
    }
  }

  /**
   * @param {'primary' | 'secondary'} which
   * @param {QuotaWindow | null} window
   * @param {string} fallbackName
   * @param {number} now
   */
  showWindow (which, window, fallbackName, now) {
    const row = part(this.element, which)
    row.hidden = window === null
    if (window === null) return
    const name = windowName(window.window_minutes, fallbackName)
    const used = window.used_percent === null ? null : Math.min(100, Math.max(0, window.used_percent))
    const resets = window.resets_at === null ? '' : ` · resets ${localTime(window.resets_at, now)} (${relative(window.resets_at, now)})`
    const text = `${used === null ? 'Usage unknown' : `${Math.round(used)}% used`}${resets}`
    setText(part(row, 'label'), name)
    setText(part(row, 'text'), text, window.resets_at === null ? null : `Resets ${fullTime(window.resets_at)}`)
    const meter = part(row, 'meter')
    meter.setAttribute('aria-label', `${name} used`)
    meter.setAttribute('aria-valuenow', String(used ?? 0))
    meter.setAttribute('aria-valuetext', text)
    meter.dataset.level = used === null ? 'unknown' : used >= 90 ? 'high' : used >= 70 ? 'warn' : 'ok'
    // Set through the CSSOM: the Content-Security-Policy forbids inline style attributes, not this.
    part(row, 'fill').style.width = `${used ?? 0}%`
  }
}
