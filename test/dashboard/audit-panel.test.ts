import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startStack } from '../helpers/stack.js'
import { assertNoErrors, openDashboard, screenshot } from './browser.js'

test('Recent changes lists the management actions, newest first, with who made them and from where', async (t) => {
  const stack = await startStack(t)
  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard
  await page.locator('#no-audit', { hasText: 'No changes since the server started.' }).waitFor()

  await stack.addAccount({ email: 'first@example.com' })
  await stack.addAccount({ email: 'second@example.com' })
  const list = page.getByRole('list').filter({ has: page.locator('time') })
  await list.getByRole('listitem').filter({ hasText: 'Imported second@example.com' }).waitFor({ timeout: 15_000 })

  const card = page.getByRole('article', { name: 'second@example.com', exact: true })
  await card.getByRole('button', { name: 'Make current' }).click()
  await list.getByRole('listitem').filter({ hasText: 'Made current second@example.com' }).waitFor({ timeout: 15_000 })

  const items = (await list.getByRole('listitem').allTextContents()).map((text) => text.replace(/^\S+\s+/, ''))
  assert.deepEqual(items, [
    'Made current second@example.com local · 127.0.0.1',
    'Imported second@example.com local · 127.0.0.1',
    'Imported first@example.com local · 127.0.0.1'
  ])
  assert.equal(await page.locator('#no-audit').isVisible(), false)
  await screenshot(page, 'dashboard-audit.png')
  assertNoErrors(dashboard)
})
