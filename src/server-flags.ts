import { setFlagsFromString } from 'node:v8'

/**
 * The Node flags the server runs with: `npm start` and the systemd unit `codex-eq service install`
 * writes put them on the node command line (package.json's start script repeats them).
 *
 * `--no-memory-reducer`: after V8's memory reducer has shrunk an idle process's heap, it lets the
 * old generation grow only by a small factor until the heap has grown 10 MB past that point. Under
 * a proxy's load (every answer's objects alive for a few milliseconds, some of them promoted) a
 * process could then stay for minutes in a cycle of a full collection every 70 ms: twice the CPU
 * per answer (docs/performance.md). Without the reducer the heap keeps the size the load needs; an
 * idle server gives memory back only as V8 collects it otherwise.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--no-memory-reducer']

/**
 * For a server started without them (`codex-eq serve` straight from the bin): set at run time.
 * V8 made its heap before this runs, so this helps less than the flag on the command line does
 * (slow windows after idle: 2 of 9 in each of three runs, against 0 of 9 twice with the flag on the
 * command line and 5 and 6 of 9 without it).
 */
export function applyServerFlags (): void {
  for (const flag of SERVER_NODE_FLAGS) {
    if (!process.execArgv.includes(flag)) setFlagsFromString(flag)
  }
}
