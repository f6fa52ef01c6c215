// @ts-check
/**
 * The usage charts, drawn with uPlot (served by this server as /vendor/uplot.js, a classic script
 * that defines the global `uPlot`): tokens per day by account and by key, the quota windows over
 * time, requests and failovers per hour.
 */
import { api } from './api.js'
import { byId } from './dom.js'

/** @typedef {import('uplot')} UPlot */
/** @typedef {import('uplot').Options} Options */

const UPlotClass = /** @type {typeof import('uplot')} */ (/** @type {any} */ (globalThis).uPlot)
const DAY_MS = 86_400_000
const COLORS = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d']

/** @type {Map<string, UPlot>} */
const charts = new Map()
/** @type {(id: string) => string} */
let accountName = (id) => id

/** The charts follow their boxes' width (a narrower window, a phone turned). */
const resizing = new ResizeObserver(() => {
  for (const [id, chart] of charts) {
    const width = Math.max(240, byId(id).clientWidth)
    if (width !== chart.width) chart.setSize({ width, height: chart.height })
  }
})

/** @param {(id: string) => string} name how an account id reads on the page (its email) */
export function nameAccountsWith (name) {
  accountName = name
}

/**
 * One chart in the element #id, replacing what was there; a line saying so when there is no data.
 * @param {string} id
 * @param {number[]} xs seconds
 * @param {Array<{ label: string, values: Array<number | null> }>} lines
 * @param {string} unit
 * @param {[number, number]} span the time axis, in seconds: a single day of data still reads as one day of many
 */
function draw (id, xs, lines, unit, span) {
  const element = byId(id)
  charts.get(id)?.destroy()
  charts.delete(id)
  element.textContent = ''
  if (xs.length === 0 || lines.length === 0) {
    const empty = document.createElement('p')
    empty.className = 'empty'
    empty.textContent = 'Nothing recorded yet.'
    element.append(empty)
    return
  }
  /** @type {Options} */
  const options = {
    width: Math.max(240, element.clientWidth),
    height: 200,
    series: [{}, ...lines.map((line, i) => ({ label: line.label, stroke: COLORS[i % COLORS.length], width: 2, points: { show: xs.length < 40 } }))],
    axes: [{}, { label: unit, size: 60 }],
    scales: {
      x: { time: true, range: () => span },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] }
    },
    legend: { show: true }
  }
  const data = /** @type {import('uplot').AlignedData} */ ([xs, ...lines.map((line) => line.values)])
  charts.set(id, new UPlotClass(options, data, element))
  resizing.observe(element)
}

/**
 * Aligns groups of `{ at, value }` points on one time axis (missing points are 0 or null).
 * @param {Array<{ label: string, points: Array<{ at: string, value: number | null }> }>} groups
 * @param {number | null} missing
 */
function align (groups, missing) {
  const times = [...new Set(groups.flatMap((group) => group.points.map((point) => Date.parse(point.at))))].sort((a, b) => a - b)
  const lines = groups.map((group) => {
    const byTime = new Map(group.points.map((point) => [Date.parse(point.at), point.value]))
    return { label: group.label, values: times.map((time) => byTime.get(time) ?? missing) }
  })
  return { xs: times.map((time) => time / 1000), lines }
}

/** Fetches the figures and redraws every chart. */
export async function refreshCharts () {
  const now = Date.now()
  const from = new Date(now - 14 * DAY_MS).toISOString()
  const today = Math.floor(now / DAY_MS) * DAY_MS
  /** @type {[number, number]} */
  const days = [(today - 13 * DAY_MS) / 1000, (today + DAY_MS / 2) / 1000]
  /** @type {[number, number]} */
  const hours = [(now - 2 * DAY_MS) / 1000, (now + DAY_MS / 24) / 1000]
  const [byAccount, byKey, quota, activity] = await Promise.all([
    api('GET', `/usage?by=account&bucket=day&from=${from}`),
    api('GET', `/usage?by=key&bucket=day&from=${from}`),
    api('GET', `/usage/quota?from=${from}`),
    api('GET', '/requests/activity')
  ])
  /** @param {any} report @param {(name: string) => string} label */
  const tokens = (report, label) => align(report.groups.map((/** @type {any} */ group) => ({
    label: label(group.name),
    points: group.series.map((/** @type {any} */ point) => ({ at: point.at, value: point.total }))
  })), 0)
  const accounts = tokens(byAccount, accountName)
  draw('chart-accounts', accounts.xs, accounts.lines, 'tokens', days)
  const keys = tokens(byKey, (name) => name)
  draw('chart-keys', keys.xs, keys.lines, 'tokens', days)

  const windows = align(quota.accounts.flatMap((/** @type {any} */ entry) => [
    { label: `${accountName(entry.account)} 5 h`, points: entry.series.map((/** @type {any} */ p) => ({ at: p.at, value: p.primary })) },
    { label: `${accountName(entry.account)} week`, points: entry.series.map((/** @type {any} */ p) => ({ at: p.at, value: p.secondary })) }
  ]), null)
  draw('chart-quota', windows.xs, windows.lines, '% used', hours)

  /** @type {Set<string>} */
  const causes = new Set(activity.flatMap((/** @type {any} */ hour) => Object.keys(hour.failovers)))
  const hourly = align([
    { label: 'requests', points: activity.map((/** @type {any} */ hour) => ({ at: hour.at, value: sum(hour.requests) })) },
    { label: 'errors (4xx, 5xx)', points: activity.map((/** @type {any} */ hour) => ({ at: hour.at, value: sum(hour.requests) - (hour.requests['2xx'] ?? 0) })) },
    ...[...causes].map((cause) => ({ label: `failovers: ${cause}`, points: activity.map((/** @type {any} */ hour) => ({ at: hour.at, value: hour.failovers[cause] ?? 0 })) }))
  ], 0)
  draw('chart-activity', hourly.xs, hourly.lines, 'per hour', hours)
}

/** @param {Record<string, number>} counts */
function sum (counts) {
  return Object.values(counts).reduce((total, n) => total + n, 0)
}
