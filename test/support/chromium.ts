import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'
import { chromium, type Browser } from 'playwright-core'

/** The Debian chromium package; the tests never download a browser. */
export const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]
/** How long Chromium is given to close before its processes are killed. */
const CLOSE_MS = 10_000

/** A headless Chromium with a fresh profile directory (Playwright's own). A missing browser fails the test. */
export async function launchChromium (): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `Chromium is missing at ${CHROMIUM}: install the Debian package (apt-get install -y chromium)`)
  return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 })
}

/**
 * Closes Chromium. `close()` waits for the browser's process to exit, and one that never does would
 * hold the whole test run: past CLOSE_MS its processes are killed, as Playwright itself does on a
 * forced close.
 */
export async function closeChromium (browser: Browser): Promise<void> {
  const closed = browser.close().catch(() => {})
  const late = await Promise.race([closed.then(() => false), delay(CLOSE_MS, true, { ref: false })])
  if (!late) return
  for (const pid of chromiumChildren()) {
    try {
      process.kill(-pid, 'SIGKILL') // Playwright starts it as the leader of a process group of its own
    } catch {
      process.kill(pid, 'SIGKILL')
    }
  }
  await closed
}

/** This process's child processes that are Chromium. */
function chromiumChildren (): number[] {
  const children = readdirSync('/proc/self/task').flatMap((task) => readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number))
  return children.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('/usr/lib/chromium/')
    } catch {
      return false
    }
  })
}
