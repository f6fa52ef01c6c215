import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { KEYS_FILE } from '../../src/store/key-file.js'
import { apiCall } from '../helpers/api-call.js'
import { postResponses, responsesBody, startStack } from '../helpers/stack.js'
import { assertNoErrors, openDashboard, screenshot } from './browser.js'

// Globals of the in-page checks (page.evaluate), which run in Chromium.
declare const document: any

test('the usage charts, recent requests and client keys render from real data under the strict CSP', async (t) => {
  const stack = await startStack(t)
  const limited = await stack.addAccount({ email: 'limited@example.com' })
  await stack.addAccount({ email: 'serving@example.com' })
  const now = Math.floor(Date.now() / 1000)
  stack.fake.backend.setQuotaHeaders(limited.accountId, { primaryUsedPercent: 35, secondaryUsedPercent: 60, primaryResetAt: now + 3600, secondaryResetAt: now + 86400 })
  const alice = (await apiCall(stack, 'POST', '/keys', { name: 'alice', daily_token_limit: 500000 })).json.secret as string
  const bob = (await apiCall(stack, 'POST', '/keys', { name: 'bob' })).json.secret as string
  for (const [secret, text] of [[alice, 'first'], [bob, 'second question, a longer one'], [alice, 'third']] as const) {
    const answer = await postResponses(stack, responsesBody(text, { prompt_cache_key: `conv-${text}` }), { authorization: `Bearer ${secret}` })
    assert.equal(answer.status, 200)
    await answer.text()
  }
  // Then the first account hits its limit: the next turn fails over, by cause "quota".
  stack.fake.backend.setExhausted(limited.accountId, { resetsInSeconds: 3600 })
  const moved = await postResponses(stack, responsesBody('after the limit', { prompt_cache_key: 'conv-after' }), { authorization: `Bearer ${bob}` })
  assert.equal(moved.status, 200)
  await moved.text()

  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard
  for (const id of ['chart-accounts', 'chart-keys', 'chart-quota', 'chart-activity']) {
    await page.locator(`#${id} canvas`).waitFor({ timeout: 20_000 })
  }
  const legends = await page.evaluate(() => Object.fromEntries(['chart-accounts', 'chart-keys', 'chart-quota', 'chart-activity'].map((id) => [id, [...document.querySelectorAll(`#${id} .u-legend .u-series .u-label`)].map((label: any) => label.textContent)])))
  assert.deepEqual(legends['chart-accounts'].slice(1).sort(), ['limited@example.com', 'serving@example.com'])
  assert.deepEqual(legends['chart-keys'].slice(1).sort(), ['alice', 'bob'])
  assert.ok(legends['chart-quota'].includes('limited@example.com 5 h'), legends['chart-quota'].join(', '))
  assert.ok(legends['chart-activity'].includes('failovers: quota'), legends['chart-activity'].join(', '))
  // uPlot draws on canvases: they have the width of their boxes, and something was drawn.
  const drawn = await page.evaluate(() => [...document.querySelectorAll('.chart canvas')].map((canvas: any) => {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data
    let painted = 0
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++
    return { width: canvas.width, painted }
  }))
  assert.equal(drawn.length, 4)
  for (const canvas of drawn) assert.ok(canvas.width > 200 && canvas.painted > 100, JSON.stringify(canvas))

  // Recent requests: newest first, with key, account and tokens; never a secret.
  const rows = page.locator('#recent-body tr')
  await page.locator('#recent-body tr', { hasText: 'after the limit' }).count() // nothing of a body is shown
  assert.equal(await rows.count(), 4)
  const first = await rows.first().locator('td').allTextContents()
  assert.deepEqual([first[1], first[2], first[4], first[5]], ['bob', 'serving@example.com', '200', '2'])
  assert.match(first[6]!, /^\d+$/)
  const html = await page.content()
  assert.ok(!html.includes(alice) && !html.includes(bob))
  assert.ok(!html.includes('after the limit'), 'no request body on the page')

  // Keys: listed with today's tokens; a new one shows its secret once, kept on the server as a hash.
  await page.locator('#keys-body tr', { hasText: 'alice' }).waitFor()
  assert.match(await page.locator('#keys-body tr', { hasText: 'alice' }).locator('td').nth(1).textContent() ?? '', /^[\d,]+ \/ 500,000$/)
  await page.getByLabel('Name').fill('carol')
  await page.getByLabel('Daily token limit').fill('1000')
  await page.getByRole('button', { name: 'Create key' }).click()
  await page.locator('#keys-result', { hasText: 'Created key carol' }).waitFor()
  const secret = await page.locator('#key-secret-value').textContent()
  assert.match(secret ?? '', /^ceq_/)
  await page.locator('#keys-body tr', { hasText: 'carol' }).waitFor()
  const onDisk = await readFile(join(stack.authsDir, KEYS_FILE), 'utf8')
  assert.ok(onDisk.includes('"carol"') && !onDisk.includes(secret!))
  const shot = await screenshot(page, 'dashboard-usage.png')

  await page.getByRole('button', { name: 'Delete key carol' }).click()
  await page.locator('#keys-result', { hasText: 'Deleted key carol' }).waitFor()
  assert.deepEqual((await apiCall(stack, 'GET', '/keys')).json.map((key: any) => key.name), ['alice', 'bob'])
  assertNoErrors(dashboard)
  t.diagnostic(`screenshot: ${shot}`)
})
