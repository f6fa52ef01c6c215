/** A store that cannot be opened, read or written, said in one line (never with a secret in it). */
export class StoreError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreError'
  }
}
