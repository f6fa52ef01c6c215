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
 *
 * `--no-allocation-site-pretenuring`: V8 moves an allocation site whose objects mostly survive a
 * young collection to allocating them straight in the old generation. Without the flag 8 of 46
 * fresh processes ran for as long as they were measured at 1.4–2 × the CPU per answer (a traced
 * one: a full collection every ~300 ms, young collections of 6–9 ms against 1 ms, each promoting
 * megabytes; docs/performance.md); with it, 0 of 46. That fits a site on the request path moved
 * while requests were in flight: its objects then die in the old generation, where only a full
 * collection finds them dead, and keep the young objects they point to alive until it does.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--no-memory-reducer', '--no-allocation-site-pretenuring']

/**
 * For a server started without them (`codex-eq serve` straight from the bin): set at run time.
 * V8 made its heap before this runs, so the memory reducer's flag helps less than on the command
 * line (slow windows after idle: 2 of 9 in each of three runs, against 0 of 9 twice with the flag
 * on the command line and 5 and 6 of 9 without it); pretenuring turned off once the modules are
 * loaded: 0 of 16 processes slow.
 */
export function applyServerFlags (): void {
  for (const flag of SERVER_NODE_FLAGS) {
    if (!process.execArgv.includes(flag)) setFlagsFromString(flag)
  }
}
