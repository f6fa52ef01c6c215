/** A setting or situation that stops start-up; the CLI prints its message as one line. */
export class StartupError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'StartupError'
  }
}
