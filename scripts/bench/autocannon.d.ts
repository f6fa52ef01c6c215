// The few parts of autocannon's API the benchmark uses (the package ships no types).
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  interface Options {
    url: string
    connections: number
    duration: number
    method?: string
    headers?: Record<string, string>
    body?: string | Buffer
    pipelining?: number
  }

  interface Result {
    errors: number
    timeouts: number
    non2xx: number
    '2xx': number
  }

  interface Instance extends EventEmitter, PromiseLike<Result> {
    on: (event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void) => this
  }

  function autocannon (options: Options): Instance
  export default autocannon
}
