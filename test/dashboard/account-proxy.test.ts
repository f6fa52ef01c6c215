import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startStack } from '../helpers/stack.js'
import { assertNoErrors, openDashboard, screenshot } from './browser.js'

test('Set proxy: the card takes a proxy, shows it with the password masked, refuses a bad one inline, and goes direct again', async (t) => {
  const stack = await startStack(t)
  const account = await stack.addAccount({ email: 'egress@example.com' })
  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard
  const card = page.getByRole('article', { name: 'egress@example.com', exact: true })
  const shown = card.locator('[data-field="proxy"]')
  await shown.filter({ hasText: /^None \(direct\)$/ }).waitFor()

  await card.getByRole('button', { name: 'Set proxy' }).click()
  const input = card.getByRole('textbox', { name: 'Proxy URL' })
  await input.fill('ftp://mallory:ftp-pass-1123@example.com')
  await card.getByRole('button', { name: 'Save proxy' }).click()
  await card.locator('[data-field="result"]', { hasText: /^Proxy not saved: proxy must be http:\/\/, https:\/\/ or socks5:\/\// }).waitFor()

  await input.fill('socks5://frank:dash-pass-8080@127.0.0.1:1080')
  await input.press('Enter')
  await card.locator('[data-field="result"]', { hasText: 'Goes through socks5://frank:***@127.0.0.1:1080.' }).waitFor()
  await shown.filter({ hasText: /^socks5:\/\/frank:\*\*\*@127\.0\.0\.1:1080$/ }).waitFor()
  assert.equal(await card.locator('[data-field="proxy-form"]').isVisible(), false)
  const views = await (await fetch(`${stack.url}/accounts/${account.id}`)).json() as { proxy: string | null }
  assert.equal(views.proxy, 'socks5://frank:***@127.0.0.1:1080')
  assert.ok(!(await page.content()).includes('dash-pass-8080'), 'the password is not on the page')
  await screenshot(page, 'dashboard-proxy.png')

  await card.getByRole('button', { name: 'Set proxy' }).click()
  assert.equal(await input.inputValue(), '', 'the masked proxy is never offered for editing')
  await card.getByRole('button', { name: 'Save proxy' }).click()
  await shown.filter({ hasText: /^None \(direct\)$/ }).waitFor()
  assertNoErrors(dashboard, [/^400 PATCH \/accounts\//])
})
