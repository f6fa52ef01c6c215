/**
 * Where `mark` starts in `previous` when it straddles the seam between two chunks (its first bytes
 * ending `previous`, the rest starting `chunk`), else -1. Checked in place: this runs on every
 * chunk of every stream, so it copies nothing and makes no garbage.
 */
export function markAcrossSeam (previous: Buffer, chunk: Buffer, mark: Buffer): number {
  for (let split = Math.min(mark.length - 1, previous.length); split >= 1; split--) {
    const rest = mark.length - split
    if (previous[previous.length - split] !== mark[0] || chunk.length < rest) continue
    if (mark.compare(previous, previous.length - split, previous.length, 0, split) === 0 && mark.compare(chunk, 0, rest, split, mark.length) === 0) return previous.length - split
  }
  return -1
}

/** Whether `bytes` holds `prefix` at `at`, compared in place (no slice, no native call for a few bytes). */
export function bytesStartWith (bytes: Buffer, at: number, prefix: Buffer): boolean {
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[at + i] !== prefix[i]) return false
  }
  return true
}
