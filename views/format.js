// @ts-check
/** How times and durations read on the page: the viewer's local clock, rounded for people. */

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' })
const dayAndClock = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' })
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })

/**
 * A local time, with the day when it is not today: "14:32", "Fri 28 Nov, 09:00".
 * @param {string} iso
 * @param {number} now
 */
export function localTime (iso, now) {
  const date = new Date(iso)
  return date.toDateString() === new Date(now).toDateString() ? clock.format(date) : dayAndClock.format(date)
}

/** @param {string} iso */
export function fullTime (iso) {
  return full.format(new Date(iso))
}

/**
 * "2 d 3 h", "1 h 29 min", "4 min 05 s", "45 s": two units are enough to plan by.
 * @param {number} ms
 */
export function duration (ms) {
  const s = Math.max(0, Math.round(ms / 1000))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (d > 0) return `${d} d ${h} h`
  if (h > 0) return `${h} h ${m} min`
  if (m > 0) return `${m} min ${String(sec).padStart(2, '0')} s`
  return `${sec} s`
}

/**
 * A ticking countdown: "2 d 03:04:05", "1:29:05", "4:05".
 * @param {number} ms
 */
export function countdown (ms) {
  const s = Math.max(0, Math.ceil(ms / 1000))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0')
  const ss = String(s % 60).padStart(2, '0')
  if (d > 0) return `${d} d ${String(h).padStart(2, '0')}:${mm}:${ss}`
  return h > 0 ? `${h}:${mm}:${ss}` : `${Number(mm)}:${ss}`
}

/**
 * "in 59 min", "3 min ago", "just now"; minutes are precise enough for facts that are not countdowns.
 * @param {string} iso
 * @param {number} now
 */
export function relative (iso, now) {
  const delta = new Date(iso).getTime() - now
  const minutes = Math.round(Math.abs(delta) / 60000)
  if (minutes === 0) return 'just now'
  const amount = minutes < 60 ? `${minutes} min` : duration(minutes * 60000)
  return delta > 0 ? `in ${amount}` : `${amount} ago`
}

/**
 * The name of a quota window: 300 minutes is the "5 h window", 10080 the "weekly window".
 * @param {number | null} minutes
 * @param {string} fallback
 */
export function windowName (minutes, fallback) {
  if (minutes === null) return fallback
  if (minutes === 10080) return 'Weekly window'
  if (minutes % 1440 === 0) return `${minutes / 1440} d window`
  if (minutes % 60 === 0) return `${minutes / 60} h window`
  return `${minutes} min window`
}
