/** The value below which `p` percent of the samples fall (nearest rank). Sorts `samples` in place. */
export function percentile (samples: number[] | Float64Array, p: number): number {
  if (samples.length === 0) return Number.NaN
  samples.sort((a, b) => a - b)
  const rank = Math.min(samples.length - 1, Math.max(0, Math.ceil((p / 100) * samples.length) - 1))
  return samples[rank]!
}

export function mib (bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

/** A plain text table: the first row is the header, columns padded to their widest cell. */
export function table (rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)))
  const line = (row: string[]): string => row.map((cell, column) => column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)).join('  ')
  return [line(rows[0]!), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(line)].join('\n')
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
