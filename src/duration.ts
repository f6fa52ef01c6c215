/** Parses human durations such as `3h`, `90m`, `45s`, `250ms`, `1d` (or a bare number of seconds) into milliseconds. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

export function parseDuration (text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text)
  if (!match) return null
  const amount = Number(match[1])
  const unit = (match[2] ?? 's').toLowerCase()
  const ms = Math.round(amount * UNIT_MS[unit]!)
  return Number.isFinite(ms) ? ms : null
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 }

/** Parses sizes such as `100mb`, `512kb`, `1gib` or a bare number of bytes. */
export function parseSize (text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(text)
  if (!match) return null
  const bytes = Math.round(Number(match[1]) * SIZE_UNITS[(match[2] ?? 'b').toLowerCase()]!)
  return Number.isSafeInteger(bytes) ? bytes : null
}
