/** How the CLI shows a moment to people: local time, and how far away it is. */

/** "in 29 min", "in 2 h 5 min", "in 3 d 4 h"; "now" when it has passed. */
export function fromNow (ms: number, now: number): string {
  const minutes = Math.ceil((ms - now) / 60_000)
  if (minutes <= 0) return 'now'
  const d = Math.floor(minutes / 1440)
  const h = Math.floor((minutes % 1440) / 60)
  const m = minutes % 60
  if (d > 0) return `in ${d} d ${h} h`
  if (h > 0) return `in ${h} h ${m} min`
  return `in ${m} min`
}

/** "14:32" today, "2026-11-30 09:00" another day, in the local time zone. */
export function localClock (ms: number, now: number): string {
  const date = new Date(ms)
  const pad = (n: number): string => String(n).padStart(2, '0')
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}`
  if (date.toDateString() === new Date(now).toDateString()) return clock
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clock}`
}

/** "14:32 (in 29 min)". */
export function whenText (iso: string, now: number): string {
  const ms = Date.parse(iso)
  return `${localClock(ms, now)} (${fromNow(ms, now)})`
}
