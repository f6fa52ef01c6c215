import type { TestContext } from 'node:test'

/**
 * Clean-ups run last-registered first, in one `t.after` (node:test runs its hooks in registration
 * order): what was started later (an instance) stops before what it uses (its Redis).
 */
export function lifo (t: Pick<TestContext, 'after'>): { after: (fn: () => Promise<void> | void) => void } {
  const steps: Array<() => Promise<void> | void> = []
  t.after(async () => {
    for (const step of steps.reverse()) await step()
  })
  return { after: (fn) => { steps.push(fn) } }
}
