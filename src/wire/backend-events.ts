import { bytesStartWith } from './byte-seam.js'

const LF = 0x0a
const CR = 0x0d
const EVENT_LINE = Buffer.from('event: ')
const DATA_LINE = Buffer.from('\ndata: ')

/** Gets one event's name (`nameStart` to `nameEnd`) and data (`dataStart` to `dataEnd`) in `chunk`; false to read no further. */
export type BackendEventReader = (chunk: Buffer, nameStart: number, nameEnd: number, dataStart: number, dataEnd: number) => boolean

/**
 * Reads the events of a chunk that starts between two events, as long as they are written the way
 * the backend writes them: `event: <name>` LF `data: <one line>` LF LF, nothing else. Each is read
 * in place, so a reader that has no use for an event never decodes it. Returns where it stopped:
 * the chunk's end, or the start of an event of any other shape, or cut by the chunk's end, which
 * is then for an SSE parser to read, from there on.
 */
export function readBackendEvents (chunk: Buffer, read: BackendEventReader): number {
  let at = 0
  while (at < chunk.length) {
    if (!bytesStartWith(chunk, at, EVENT_LINE)) return at
    const nameStart = at + EVENT_LINE.length
    const nameEnd = nameLineEnd(chunk, nameStart)
    if (nameEnd === -1 || nameEnd === nameStart || chunk[nameEnd - 1] === CR) return at
    const dataEnd = soleDataLineEnd(chunk, nameEnd)
    if (dataEnd === -1) return at
    if (!read(chunk, nameStart, nameEnd, nameEnd + DATA_LINE_START, dataEnd)) return chunk.length
    at = dataEnd + 2
  }
  return at
}

/**
 * For an event whose name's line ends at `nameEnd` (its LF): where its data ends when one `data: `
 * line follows and ends the event, as the backend writes it (LF LF, no CR); -1 otherwise. The data
 * starts `DATA_LINE_START` bytes after `nameEnd`.
 */
export function soleDataLineEnd (chunk: Buffer, nameEnd: number): number {
  if (!bytesStartWith(chunk, nameEnd, DATA_LINE)) return -1
  const end = chunk.indexOf(LF, nameEnd + DATA_LINE.length)
  return end !== -1 && chunk[end + 1] === LF && chunk[end - 1] !== CR ? end : -1
}

export const DATA_LINE_START = DATA_LINE.length

/** Longer than any event name: a name's line is looked through in a loop, cheaper than a native search for a few dozen bytes. */
const LONGEST_NAME = 64

/** Where the name's line from `from` ends (its LF); -1 when it does not end within LONGEST_NAME bytes of the chunk. */
function nameLineEnd (chunk: Buffer, from: number): number {
  const end = Math.min(from + LONGEST_NAME, chunk.length)
  for (let i = from; i < end; i++) {
    if (chunk[i] === LF) return i
  }
  return -1
}

/** Whether a stream whose last chunk this is stands between two events: the chunk ends with a blank line. */
export function endsBetweenEvents (chunk: Buffer): boolean {
  return chunk.length >= 2 && chunk[chunk.length - 1] === LF && chunk[chunk.length - 2] === LF
}
