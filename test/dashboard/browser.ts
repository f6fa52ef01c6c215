import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, type TestContext } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { closeChromium, launchChromium } from '../support/chromium.js'

/** Screenshots for people to look at (git-ignored). */
export const OUTPUT_DIR = join(process.cwd(), 'test-output')

let launching: Promise<Browser> | undefined

/** One headless Chromium for the whole file. */
function browser (): Promise<Browser> {
  launching ??= launchChromium()
  return launching
}

after(async () => {
  const launched = await launching?.catch(() => null)
  if (launched != null) await closeChromium(launched)
})

export interface Dashboard {
  page: Page
  context: BrowserContext
  /** Console errors and uncaught exceptions of the dashboard's own pages. */
  problems: string[]
  /** Answers >= 400 the dashboard's pages received, as "401 GET /info". */
  httpErrors: string[]
  /** The headers the page itself (index.html) was served with. */
  pageHeaders: Record<string, string>
  /** Every request the dashboard's pages sent, with the Authorization header it carried. */
  requests: Array<{ method: string, url: string, authorization: string | undefined }>
}

/**
 * Opens the dashboard of a running stack in a new browser context (its own sessionStorage,
 * routes and popups), in British English on UTC so that times read the same on every machine.
 */
export async function openDashboard (t: TestContext, baseUrl: string, o: { colorScheme?: 'light' | 'dark', permissions?: string[] } = {}): Promise<Dashboard> {
  const context = await (await browser()).newContext({
    locale: 'en-GB',
    timezoneId: 'UTC',
    colorScheme: o.colorScheme ?? 'light',
    viewport: { width: 1100, height: 900 },
    permissions: o.permissions ?? []
  })
  t.after(() => context.close())
  context.setDefaultTimeout(10_000)
  const dashboard: Dashboard = { page: undefined as unknown as Page, context, problems: [], httpErrors: [], pageHeaders: {}, requests: [] }
  const origin = new URL(baseUrl).origin
  const ours = (page: Page): boolean => page.url() === 'about:blank' || page.url().startsWith(origin)

  const watch = (page: Page): void => {
    page.on('console', (message) => {
      if (message.type() === 'error' && ours(page)) dashboard.problems.push(`console: ${message.text()}`)
    })
    page.on('pageerror', (error) => {
      if (ours(page)) dashboard.problems.push(`page error: ${error.message}`)
    })
    page.on('request', (request) => {
      if (request.url().startsWith(origin)) dashboard.requests.push({ method: request.method(), url: request.url(), authorization: request.headers().authorization })
    })
    page.on('response', (response) => {
      const url = new URL(response.url())
      if (url.origin === origin && response.status() >= 400) dashboard.httpErrors.push(`${response.status()} ${response.request().method()} ${url.pathname}`)
    })
  }
  context.on('page', watch)
  dashboard.page = await context.newPage()
  const answer = await dashboard.page.goto(baseUrl)
  assert.equal(answer?.status(), 200)
  dashboard.pageHeaders = answer.headers()
  return dashboard
}

/**
 * Asserts the page logged no error and threw nothing. Chromium logs every HTTP error answer as a
 * console error ("Failed to load resource"); those must be exactly the answers the test provoked.
 */
export function assertNoErrors (dashboard: Dashboard, expectedHttpErrors: Array<string | RegExp> = []): void {
  const resourceLine = /^console: Failed to load resource: the server responded with a status of \d+/
  const other = dashboard.problems.filter((problem) => !resourceLine.test(problem))
  assert.deepEqual(other, [], 'no console errors or page errors')
  assert.equal(dashboard.httpErrors.length, expectedHttpErrors.length, `HTTP errors: ${dashboard.httpErrors.join(', ') || 'none'}`)
  expectedHttpErrors.forEach((expected, i) => {
    if (typeof expected === 'string') assert.equal(dashboard.httpErrors[i], expected)
    else assert.match(dashboard.httpErrors[i]!, expected)
  })
  assert.equal(dashboard.problems.length - other.length, dashboard.httpErrors.length, 'every logged resource error is an expected HTTP error')
}

export async function screenshot (page: Page, name: string): Promise<string> {
  await mkdir(OUTPUT_DIR, { recursive: true })
  const path = join(OUTPUT_DIR, name)
  await page.screenshot({ path, fullPage: true })
  return path
}

/** Waits until fn() holds (Node side), for server state that follows a click. */
export async function eventually (fn: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await fn()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
