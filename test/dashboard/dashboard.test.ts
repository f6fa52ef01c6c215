import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { Locator, Page } from 'playwright-core'
import type { AccountView } from '../../src/pool/account-view.js'
import { codexAuthJson, type FakeAccount } from '../fakes/index.js'
import { postResponses, responsesBody, startStack, type Stack } from '../helpers/stack.js'
import { assertNoErrors, eventually, openDashboard, screenshot, type Dashboard } from './browser.js'

const ADMIN_TOKEN = 'admin-token-0123456789'

// Globals of the in-page checks (page.evaluate), which run in Chromium: the project compiles without the DOM library.
declare const document: any
declare const getComputedStyle: (element: unknown) => { backgroundColor: string }
declare const sessionStorage: { length: number } & Record<string, string>
declare const navigator: { clipboard: { readText: () => Promise<string> } }

async function serverAccounts (stack: Stack, token: string | null = null): Promise<AccountView[]> {
  const response = await fetch(`${stack.url}/accounts`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } })
  assert.equal(response.status, 200)
  return await response.json() as AccountView[]
}

function card (page: Page, name: string): Locator {
  return page.getByRole('article', { name, exact: true })
}

function part (scope: Locator, name: string, hasText?: string | RegExp): Locator {
  return scope.locator(`[data-field="${name}"]`, hasText === undefined ? {} : { hasText })
}

/**
 * A time as the page shows it (the browser runs in en-GB on UTC): "14:32" today, "Mon 30 Nov,
 * 00:11" on another day, so the check holds at any hour of the run.
 */
function clockOf (iso: string): string {
  const date = new Date(iso)
  const today = date.toISOString().slice(0, 10) === new Date().toISOString().slice(0, 10)
  const options: Intl.DateTimeFormatOptions = today ? { hour: '2-digit', minute: '2-digit', timeZone: 'UTC' } : { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', timeZone: 'UTC' }
  return new Intl.DateTimeFormat('en-GB', options).format(date)
}

/** A dashboard on an empty pool whose next sign-in at the fake issuer is this person. */
async function readyToSignIn (t: TestContext, email: string): Promise<{ stack: Stack, person: FakeAccount, dashboard: Dashboard, page: Page }> {
  const stack = await startStack(t)
  const person = stack.fake.addAccount({ email })
  stack.fake.nextLogin = person.accountId
  const dashboard = await openDashboard(t, stack.url)
  await dashboard.page.locator('#summary', { hasText: 'No accounts in the pool yet.' }).waitFor()
  return { stack, person, dashboard, page: dashboard.page }
}

test('the page shows every account: serving, cooling with its countdown and reason, disabled, needs login, quota bars', async (t) => {
  const stack = await startStack(t)
  const cooling = await stack.addAccount({ email: 'cooling@example.com', plan: 'plus' })
  const failing = await stack.addAccount({ email: 'failing@example.com', plan: 'team' })
  const serving = await stack.addAccount({ email: 'serving@example.com', plan: 'pro' })
  const stale = await stack.addAccount({ email: 'stale@example.com' })
  const now = Math.floor(Date.now() / 1000)
  stack.fake.backend.setExhausted(cooling.accountId, { resetsInSeconds: 5400, via: 'body' })
  stack.fake.backend.script(failing.accountId, { kind: 'status', status: 403 }, { kind: 'status', status: 403 }, { kind: 'status', status: 403 })
  stack.fake.backend.setQuotaHeaders(serving.accountId, { primaryUsedPercent: 42, secondaryUsedPercent: 91, primaryResetAt: now + 2 * 3600, secondaryResetAt: now + 3 * 86400 })
  const turn = await postResponses(stack)
  assert.match(await turn.text(), /served by serving@example.com/)
  stack.fake.issuer.failRefresh(stale.accountId, 'invalidated')
  assert.equal((await fetch(`${stack.url}/accounts/${stale.id}/refresh`, { method: 'POST' })).status, 409)
  const before = await serverAccounts(stack)
  assert.deepEqual(before.map((a) => a.status), ['cooling', 'disabled', 'active', 'needs_login'])

  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard
  const policy = dashboard.pageHeaders['content-security-policy'] ?? ''
  assert.match(policy, /default-src 'self'/)
  assert.match(policy, /script-src 'self'(;|$)/, 'no inline scripts')
  assert.match(policy, /frame-ancestors 'none'/)
  assert.equal(dashboard.pageHeaders['x-content-type-options'], 'nosniff')

  const servingCard = card(page, 'serving@example.com')
  await part(servingCard, 'badge', /^Serving now$/).waitFor()
  assert.equal(await part(servingCard, 'plan').textContent(), 'pro')
  assert.equal(await part(servingCard, 'requests').textContent(), '1')
  assert.match(await part(servingCard, 'last-used').textContent() ?? '', /^just now$/)
  assert.match(await part(servingCard, 'expire').textContent() ?? '', new RegExp(`^in (59 min|1 h 0 min) · ${clockOf(before[2]!.expire!)}$`))
  assert.equal(await part(servingCard, 'last-error').textContent(), 'None')
  const primary = part(servingCard, 'primary')
  const secondary = part(servingCard, 'secondary')
  assert.equal(await part(primary, 'label').textContent(), '5 h window')
  assert.equal(await part(primary, 'meter').getAttribute('aria-valuenow'), '42')
  assert.equal(await part(primary, 'meter').getAttribute('data-level'), 'ok')
  assert.equal(await part(primary, 'text').textContent(), `42% used · resets ${clockOf(new Date((now + 2 * 3600) * 1000).toISOString())} (in 2 h 0 min)`)
  assert.equal(await part(secondary, 'label').textContent(), 'Weekly window')
  assert.equal(await part(secondary, 'meter').getAttribute('aria-valuenow'), '91')
  assert.equal(await part(secondary, 'meter').getAttribute('data-level'), 'high')
  assert.match(await part(secondary, 'text').textContent() ?? '', /^91% used · resets \w{3} \d+ \w{3}, \d\d:\d\d \(in 3 d 0 h\)$/)
  const fillWidth = await part(primary, 'fill').evaluate((el) => el.getBoundingClientRect().width / el.parentElement!.getBoundingClientRect().width)
  assert.ok(Math.abs(fillWidth - 0.42) < 0.02, `the primary bar is 42% full (${fillWidth})`)

  const coolingCard = card(page, 'cooling@example.com')
  const coolingView = before[0]!
  const coolingBadge = await part(coolingCard, 'badge').textContent() ?? ''
  assert.match(coolingBadge, new RegExp(`^Cooling until ${clockOf(coolingView.disabled_until!)} · 1:(29|30):\\d\\d left$`))
  assert.equal(await part(coolingCard, 'reason').textContent(), `Reason: usage_limit_reached (reset time from ${coolingView.disabled_source})`)
  assert.equal(await coolingCard.getByRole('button', { name: 'Enable now' }).isVisible(), true)
  assert.equal(await coolingCard.getByRole('button', { name: 'Make current' }).isVisible(), false)
  // The countdown ticks without a reload.
  const ticked = await part(coolingCard, 'badge').textContent()
  await page.waitForFunction((previous) => document.querySelector('[data-status="cooling"] [data-field="badge"]')?.textContent !== previous, ticked, { timeout: 3000 })

  const failingCard = card(page, 'failing@example.com')
  assert.match(await part(failingCard, 'badge').textContent() ?? '', /^Disabled until (\w{3} \d+ \w{3}, )?\d\d:\d\d · 2:59:\d\d left$/)
  const failingView = before[1]!
  assert.match(failingView.reason!, /HTTP 403/)
  assert.equal(await part(failingCard, 'reason').textContent(), `Reason: ${failingView.reason} (resting for the configured cooldown after repeated failures)`)
  assert.equal(await part(failingCard, 'last-error').textContent(), `${failingView.last_error} · just now`)

  const staleCard = card(page, 'stale@example.com')
  assert.equal(await part(staleCard, 'badge').textContent(), 'Needs login')
  assert.match(await part(staleCard, 'reason').textContent() ?? '', /refresh_token_invalidated: sign in to this account again \(the refresh token was refused\)/)
  assert.equal(await part(staleCard, 'no-quota').isVisible(), true)

  assert.equal(await page.locator('#summary').textContent(), '4 accounts · 1 usable · serving: serving@example.com')
  assert.match(await page.locator('#live').textContent() ?? '', /^Live · updated /)
  const snippet = await page.locator('#codex-config').textContent()
  // The README's recommended setup: WebSocket is on by default.
  assert.equal(snippet, `model_provider = "codex_equilibrium"\nchatgpt_base_url = "${stack.url}/backend-api"\n\n[model_providers.codex_equilibrium]\nname = "OpenAI"\nbase_url = "${stack.url}/backend-api/codex"\nwire_api = "responses"\nsupports_websockets = true\n`)
  assert.equal(await page.locator('#codex-env').isVisible(), false)
  assert.match(await page.locator('#version').textContent() ?? '', /^v\d+\.\d+\.\d+/)

  // Every form control has a label and every button a name.
  const unlabelled = await page.evaluate(() => [
    ...[...document.querySelectorAll('input, textarea')].filter((el: any) => el.labels?.length === 0).map((el: any) => el.id),
    ...[...document.querySelectorAll('button')].filter((el: any) => el.textContent?.trim() === '').map((el: any) => el.outerHTML)
  ])
  assert.deepEqual(unlabelled, [])

  // Live: a turn served elsewhere and an account added elsewhere show up without a reload.
  await (await postResponses(stack)).text()
  await stack.addAccount({ email: 'later@example.com' })
  await part(servingCard, 'requests', /^2$/).waitFor({ timeout: 5000 })
  await part(card(page, 'later@example.com'), 'badge', /^Active$/).waitFor({ timeout: 5000 })
  await page.locator('#summary', { hasText: '5 accounts · 2 usable' }).waitFor()

  await screenshot(page, 'dashboard.png')
  await page.emulateMedia({ colorScheme: 'dark' })
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor)
  assert.equal(background, 'rgb(17, 20, 24)', 'dark colours when the system prefers dark')
  await screenshot(page, 'dashboard-dark.png')
  await page.setViewportSize({ width: 375, height: 800 })
  await page.emulateMedia({ colorScheme: 'light' })
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), 375, 'nothing sticks out sideways at phone width')
  await screenshot(page, 'dashboard-375.png')
  assertNoErrors(dashboard)

  // Losing the server is said at once (the browser then logs the refused connections, hence after the check above).
  await stack.app.close()
  await page.getByRole('alert').filter({ hasText: 'Lost contact with the server (cannot reach the server); retrying every few seconds.' }).waitFor()
  assert.equal(await page.locator('#live').textContent(), 'Offline')
})

test('Refresh token: new tokens on the server and "Token refreshed" on the card; a refused refresh shows why and "Needs login"', async (t) => {
  const stack = await startStack(t)
  const good = await stack.addAccount({ email: 'good@example.com' })
  const revoked = await stack.addAccount({ email: 'revoked@example.com' })
  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard

  const goodCard = card(page, 'good@example.com')
  await goodCard.getByRole('button', { name: 'Refresh token' }).click()
  // Read the server's view only once the card says the refresh is done: before, it may still hold the old expiry.
  await part(goodCard, 'result', /^Token refreshed; it expires at /).waitFor()
  const refreshed = (await serverAccounts(stack)).find((a) => a.id === good.id)!
  assert.equal(await part(goodCard, 'result').textContent(), `Token refreshed; it expires at ${clockOf(refreshed.expire!)}.`)
  assert.notEqual(refreshed.last_refresh, null)
  assert.equal(stack.fake.issuer.refreshCalls, 1)
  assert.notEqual(stack.fake.accounts.find((a) => a.accountId === good.accountId)!.tokens.refresh_token, good.tokens.refresh_token, 'the issuer rotated the tokens')

  stack.fake.issuer.failRefresh(revoked.accountId, 'invalidated')
  const revokedCard = card(page, 'revoked@example.com')
  assert.equal(await part(revokedCard, 'badge').textContent(), 'Active')
  await revokedCard.getByRole('button', { name: 'Refresh token' }).click()
  await part(revokedCard, 'result', /^Refresh failed: .*invalidated/).waitFor()
  await part(revokedCard, 'badge', /^Needs login$/).waitFor()
  assert.equal((await serverAccounts(stack)).find((a) => a.id === revoked.id)!.status, 'needs_login')
  assertNoErrors(dashboard, [`409 POST /accounts/${revoked.id}/refresh`])
})

test('Enable now brings a cooling account back at once', async (t) => {
  const stack = await startStack(t)
  const resting = await stack.addAccount({ email: 'resting@example.com' })
  await stack.addAccount({ email: 'spare@example.com' })
  stack.fake.backend.setExhausted(resting.accountId, { resetsInSeconds: 3600 })
  await (await postResponses(stack)).text()
  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard

  const restingCard = card(page, 'resting@example.com')
  await part(restingCard, 'badge', /^Cooling until /).waitFor()
  await restingCard.getByRole('button', { name: 'Enable now' }).click()
  await part(restingCard, 'result', 'Enabled: it serves again when its turn comes.').waitFor()
  await part(restingCard, 'badge', /^Active$/).waitFor()
  assert.equal(await part(restingCard, 'reason').isVisible(), false)
  assert.equal(await restingCard.getByRole('button', { name: 'Enable now' }).isVisible(), false, 'nothing left to enable')
  const view = (await serverAccounts(stack)).find((a) => a.id === resting.id)!
  assert.equal(view.status, 'active')
  assert.equal(view.disabled_until, null)
  assertNoErrors(dashboard)
})

test('Make current moves "Serving now", and the next turn is served by that account', async (t) => {
  const stack = await startStack(t)
  await stack.addAccount({ email: 'first@example.com' })
  const second = await stack.addAccount({ email: 'second@example.com' })
  await (await postResponses(stack)).text()
  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard

  await part(card(page, 'first@example.com'), 'badge', /^Serving now$/).waitFor()
  const secondCard = card(page, 'second@example.com')
  await secondCard.getByRole('button', { name: 'Make current' }).click()
  await part(secondCard, 'result', 'second@example.com serves the next requests.').waitFor()
  await part(secondCard, 'badge', /^Serving now$/).waitFor()
  await part(card(page, 'first@example.com'), 'badge', /^Active$/).waitFor()
  assert.equal((await serverAccounts(stack)).find((a) => a.id === second.id)!.current, true)
  // A new conversation (an existing one stays with the account that holds its reasoning).
  assert.match(await (await postResponses(stack, responsesBody('next', { prompt_cache_key: 'conv-2' }))).text(), /served by second@example.com/)
  assertNoErrors(dashboard)
})

test('Remove, by keyboard: asks first, Escape keeps the account, confirming removes it from the server and the page', async (t) => {
  const stack = await startStack(t)
  const doomed = await stack.addAccount({ email: 'doomed@example.com' })
  await stack.addAccount({ email: 'kept@example.com' })
  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard
  const doomedCard = card(page, 'doomed@example.com')
  const remove = doomedCard.getByRole('button', { name: 'Remove', exact: true })
  await remove.waitFor()

  // Tab from the top of the page reaches the button.
  let reached = false
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab')
    reached = await remove.evaluate((el) => el === document.activeElement)
  }
  assert.ok(reached, 'the Remove button is reachable with Tab')
  await page.keyboard.press('Enter')
  const confirm = part(doomedCard, 'confirm')
  await confirm.waitFor()
  assert.equal(await part(doomedCard, 'confirm-text').textContent(), 'Remove doomed@example.com from the pool? Its tokens are deleted from this server.')
  assert.equal(await doomedCard.getByRole('button', { name: 'Cancel' }).evaluate((el) => el === document.activeElement), true, 'the safe choice has the focus')
  await page.keyboard.press('Escape')
  await confirm.waitFor({ state: 'hidden' })
  assert.equal(await remove.evaluate((el) => el === document.activeElement), true)
  assert.equal((await serverAccounts(stack)).length, 2, 'nothing removed without confirmation')

  await page.keyboard.press('Enter')
  await confirm.waitFor()
  await page.keyboard.press('Shift+Tab')
  assert.equal(await doomedCard.getByRole('button', { name: 'Yes, remove' }).evaluate((el) => el === document.activeElement), true)
  await page.keyboard.press('Enter')
  await page.locator('#accounts-result', { hasText: 'Removed doomed@example.com.' }).waitFor()
  await doomedCard.waitFor({ state: 'detached' })
  assert.deepEqual((await serverAccounts(stack)).map((a) => a.email), ['kept@example.com'])
  assert.equal((await serverAccounts(stack)).some((a) => a.id === doomed.id), false)
  // It stays gone across the next poll.
  await page.waitForResponse((response) => new URL(response.url()).pathname === '/accounts')
  assert.equal(await doomedCard.count(), 0)
  assertNoErrors(dashboard)
})

test('Import a Codex auth.json: pasted contents add the account; bad input is refused inline', async (t) => {
  const stack = await startStack(t)
  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard
  await page.locator('#summary', { hasText: 'No accounts in the pool yet.' }).waitFor()
  assert.equal(await page.locator('#no-accounts').isVisible(), true)
  await page.locator('summary', { hasText: 'Import a Codex' }).click()
  const text = page.getByLabel('Or paste its contents')
  const result = page.locator('#import-result')

  await text.fill('{ not json')
  await page.getByRole('button', { name: 'Import' }).click()
  await result.filter({ hasText: 'That is not JSON: paste the whole auth.json.' }).waitFor()

  await text.fill(JSON.stringify({ tokens: { id_token: 'x', access_token: 'y', refresh_token: 'z' } }))
  await page.getByRole('button', { name: 'Import' }).click()
  await result.filter({ hasText: /^Import failed: / }).waitFor()
  assert.equal((await serverAccounts(stack)).length, 0)

  const imported = stack.fake.addAccount({ email: 'imported@example.com' })
  await text.fill(JSON.stringify(codexAuthJson(imported.tokens), null, 2))
  await page.getByRole('button', { name: 'Import' }).click()
  await result.filter({ hasText: 'Imported imported@example.com.' }).waitFor()
  assert.equal(await text.inputValue(), '', 'the tokens do not linger in the page')
  await part(card(page, 'imported@example.com'), 'badge', /^Serving now$/).waitFor()
  assert.deepEqual((await serverAccounts(stack)).map((a) => a.email), ['imported@example.com'])
  assertNoErrors(dashboard, ['400 POST /accounts/import'])
})

test('with API keys on (and WebSocket off), the Codex CLI panel adds env_key, and Copy puts the snippet on the clipboard', async (t) => {
  // With WebSocket off, the simple setup is shown.
  const stack = await startStack(t, { settings: { apiKey: ['api-key-0123456789abcdef'], websocket: 'off' } })
  const dashboard = await openDashboard(t, stack.url, { permissions: ['clipboard-read', 'clipboard-write'] })
  const { page } = dashboard
  const snippet = page.locator('#codex-config')
  await snippet.filter({ hasText: 'env_key' }).waitFor()
  const expected = `model_provider = "codex_equilibrium"\n\n[model_providers.codex_equilibrium]\nname = "codex_equilibrium"\nbase_url = "${stack.url}/v1"\nwire_api = "responses"\nenv_key = "CODEX_EQ_API_KEY"\n`
  assert.equal(await snippet.textContent(), expected)
  assert.equal(await page.locator('#codex-env').isVisible(), true)
  assert.equal(await page.content().then((html) => html.includes('api-key-0123456789abcdef')), false, 'the key itself is never shown')
  await page.getByRole('button', { name: 'Copy' }).click()
  await page.locator('#codex-copy-result', { hasText: 'Copied.' }).waitFor()
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), expected)
  assertNoErrors(dashboard)
})

test('admin token: asked once, kept in the tab, sent only as a Bearer header; a wrong one is refused', async (t) => {
  const stack = await startStack(t, { settings: { adminToken: ADMIN_TOKEN } })
  await stack.addAccount({ email: 'guarded@example.com' })
  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard

  const tokenField = page.getByLabel('Admin token')
  await tokenField.waitFor()
  assert.equal(await tokenField.evaluate((el) => el === document.activeElement), true, 'the token field has the focus')
  assert.equal(await page.locator('#dashboard').isVisible(), false)

  await tokenField.fill('wrong-token-0123456789')
  await page.keyboard.press('Enter')
  await page.locator('#unlock-result', { hasText: 'The server refused that admin token.' }).waitFor()
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept')

  await tokenField.fill(ADMIN_TOKEN)
  await page.getByRole('button', { name: 'Unlock' }).click()
  await part(card(page, 'guarded@example.com'), 'badge', /^Serving now$/).waitFor()
  assert.equal(await page.locator('#unlock').isVisible(), false)
  assert.deepEqual(await page.evaluate(() => Object.values(sessionStorage)), [ADMIN_TOKEN])

  // A reload in the same tab does not ask again.
  await page.reload()
  await part(card(page, 'guarded@example.com'), 'badge', /^Serving now$/).waitFor()
  assert.equal(await page.locator('#unlock').isVisible(), false)

  const apiCalls = dashboard.requests.filter((r) => /\/(info|accounts)$/.test(new URL(r.url).pathname))
  assert.ok(apiCalls.length >= 4)
  assert.equal(dashboard.requests.some((r) => r.url.includes(ADMIN_TOKEN) || r.url.includes('wrong-token')), false, 'the token is never in a URL')
  const afterUnlock = apiCalls.slice(apiCalls.findIndex((r) => r.authorization === `Bearer ${ADMIN_TOKEN}`))
  assert.ok(afterUnlock.length >= 3 && afterUnlock.every((r) => r.authorization === `Bearer ${ADMIN_TOKEN}`), 'every call after unlocking carries the token')
  assertNoErrors(dashboard, ['401 GET /info', '401 GET /info'])
})

test('Add OpenAI account: the browser sign-in runs through the issuer to the callback listener and the account appears; a refusal is shown', async (t) => {
  const { stack, person, dashboard, page } = await readyToSignIn(t, 'browser@example.com')
  const message = page.locator('#browser-login [data-field="message"]')
  const signIn = async (): Promise<void> => {
    const [window] = await Promise.all([
      page.waitForEvent('popup'),
      page.getByRole('button', { name: 'Add OpenAI account' }).click()
    ])
    await window.waitForURL(/^http:\/\/localhost:\d+\/auth\/callback\?/)
    await window.close()
  }

  stack.fake.consent = 'deny'
  await signIn()
  await message.filter({ hasText: /^Sign-in failed: .+/ }).waitFor()
  assert.equal((await serverAccounts(stack)).length, 0)

  stack.fake.consent = 'approve'
  await signIn()
  await message.filter({ hasText: 'Signed in as browser@example.com; the account is in the pool.' }).waitFor()
  await part(card(page, 'browser@example.com'), 'badge', /^Serving now$/).waitFor()
  assert.equal(stack.fake.issuer.authorizeRequests.length, 2)
  assert.match(stack.fake.issuer.authorizeRequests[1]!.redirect_uri!, /^http:\/\/localhost:\d+\/auth\/callback$/)
  const accounts = await serverAccounts(stack)
  assert.deepEqual(accounts.map((a) => [a.email, a.account_id]), [['browser@example.com', person.accountId]])
  assertNoErrors(dashboard)
})

test('a device login that fails no longer shows its code and link, and says why', async (t) => {
  const { page, dashboard } = await readyToSignIn(t, 'device-failed@example.com')
  // The server's verdict on this login, as it would give it after the issuer refused.
  await page.route('**/auth/device/*', async (route) => {
    if (route.request().method() !== 'GET') return await route.fallback()
    await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ status: 'failed', error: 'the issuer refused the device login' }) })
  })
  await page.getByRole('button', { name: 'Add by device code' }).click()
  const code = page.locator('#device-login [data-field="code"]')
  await code.waitFor()
  await page.locator('#device-login [data-field="message"]', { hasText: 'Sign-in failed: the issuer refused the device login' }).waitFor({ timeout: 15_000 })
  assert.equal(await code.isVisible(), false, 'the code of a failed login is not offered')
  assert.equal(await page.locator('#device-login [data-field="link"]').isVisible(), false, 'nor its link')
  assertNoErrors(dashboard)
})

test('Add by device code: the code is shown, entered at the issuer, and the account appears', async (t) => {
  const { stack, person, dashboard, page } = await readyToSignIn(t, 'device@example.com')
  await page.getByRole('button', { name: 'Add by device code' }).click()
  const code = page.locator('#device-login [data-field="code"]')
  await code.waitFor()
  const userCode = (await code.textContent())!.trim()
  assert.match(userCode, /^[A-Z0-9]{4}-[A-Z0-9]{5}$/)

  const [verify] = await Promise.all([
    page.waitForEvent('popup'),
    page.getByRole('link', { name: `${stack.fake.issuerUrl}/codex/device` }).click()
  ])
  await verify.getByLabel('Code').fill(userCode)
  await verify.getByRole('button', { name: 'Continue' }).click()
  await verify.getByRole('heading', { name: 'Device approved' }).waitFor()
  await verify.close() // back to the dashboard

  await page.locator('#device-login [data-field="message"]', { hasText: 'Signed in as device@example.com; the account is in the pool.' }).waitFor({ timeout: 15_000 })
  await part(card(page, 'device@example.com'), 'badge', /^Serving now$/).waitFor()
  assert.equal(await code.isVisible(), false, 'the used code is no longer shown')
  assert.deepEqual((await serverAccounts(stack)).map((a) => a.account_id), [person.accountId])
  assertNoErrors(dashboard)
})

test('paste the redirect address: when the sign-in window cannot reach the callback, the pasted address finishes it', async (t) => {
  const { stack, person, dashboard, page } = await readyToSignIn(t, 'pasted@example.com')
  const { context } = dashboard
  // As with a remote server: the issuer's redirect to localhost reaches nothing on the browser's machine.
  // (Playwright does not route redirect hops, so the issuer's answer is taken here and replaced by the dead end.)
  let redirect: string | null = null
  await context.route((url) => url.href.startsWith(`${stack.fake.issuerUrl}/oauth/authorize?`), async (route) => {
    const answer = await route.fetch({ maxRedirects: 0 })
    assert.equal(answer.status(), 302)
    redirect = answer.headers().location!
    await route.fulfill({ status: 502, contentType: 'text/html', body: '<!doctype html><title>Unreachable</title><p>This site cannot be reached.</p>' })
  })

  const [window] = await Promise.all([
    page.waitForEvent('popup'),
    page.getByRole('button', { name: 'Add OpenAI account' }).click()
  ])
  await eventually(() => redirect !== null, 'the issuer to redirect to the callback')
  await window.close() // the user leaves the dead end for the dashboard
  await page.locator('summary', { hasText: 'The sign-in window ended on a' }).click()
  const address = page.getByLabel('Redirect address')
  const result = page.locator('#paste-result')

  const forged = new URL(redirect!)
  forged.searchParams.set('state', 'forged-state')
  await address.fill(forged.href)
  await page.getByRole('button', { name: 'Finish sign-in' }).click()
  await result.filter({ hasText: /^That did not work: / }).waitFor()
  assert.equal((await serverAccounts(stack)).length, 0, 'a forged address adds nothing')

  await address.fill(redirect!)
  await page.getByRole('button', { name: 'Finish sign-in' }).click()
  await result.filter({ hasText: 'Signed in as pasted@example.com; the account is in the pool.' }).waitFor()
  assert.equal(await address.inputValue(), '', 'the one-time code does not linger in the page')
  await part(card(page, 'pasted@example.com'), 'badge', /^Serving now$/).waitFor()
  assert.deepEqual((await serverAccounts(stack)).map((a) => a.account_id), [person.accountId])
  assertNoErrors(dashboard, [/^4\d\d POST \/auth\/callback-url$/])
})

test('once a browser sign-in is over, the dashboard no longer offers that login\'s sign-in page', async (t) => {
  const { stack, dashboard, page } = await readyToSignIn(t, 'finished@example.com')
  const message = page.locator('#browser-login [data-field="message"]')
  const offer = page.getByRole('link', { name: 'Open the sign-in page' })
  const signIn = async (): Promise<void> => {
    const [window] = await Promise.all([
      page.waitForEvent('popup'),
      page.getByRole('button', { name: 'Add OpenAI account' }).click()
    ])
    await window.waitForURL(/^http:\/\/localhost:\d+\/auth\/callback\?/)
    await window.close()
  }

  stack.fake.consent = 'deny'
  await signIn()
  await message.filter({ hasText: /^Sign-in failed: .+/ }).waitFor()
  assert.equal(await offer.count(), 0, 'a failed login\'s page is withdrawn')

  stack.fake.consent = 'approve'
  await signIn()
  await message.filter({ hasText: 'Signed in as finished@example.com; the account is in the pool.' }).waitFor()
  assert.equal(await offer.count(), 0, 'a completed login\'s page is withdrawn')
  assert.equal(await page.locator('#browser-login [data-field="link"]').getAttribute('href'), null)
  assert.equal(await page.locator('#browser-login [data-field="link-line"]').isVisible(), false)
  assertNoErrors(dashboard)
})

test('a briefly resting account and a model-scoped limit are shown for what they are', async (t) => {
  const stack = await startStack(t)
  const limited = await stack.addAccount({ email: 'limited@example.com' })
  const resting = await stack.addAccount({ email: 'resting@example.com' })
  await stack.addAccount({ email: 'serving@example.com' })
  const resetsAt = Math.floor(Date.now() / 1000) + 1800
  stack.fake.backend.setModelLimit(limited.accountId, 'gpt-5.3-codex-spark', { family: 'codex_bengalfox', limitName: 'GPT-5.3-Codex-Spark', resetsAt })
  stack.fake.backend.script(resting.accountId, { kind: 'status', status: 502 })
  const turn = await postResponses(stack, responsesBody('spark', { model: 'gpt-5.3-codex-spark' }))
  assert.match(await turn.text(), /served by serving@example.com/)
  const views = await serverAccounts(stack)
  assert.deepEqual(views.map((v) => v.status), ['active', 'resting', 'active'])

  const dashboard = await openDashboard(t, stack.url)
  const { page } = dashboard
  const restingCard = card(page, 'resting@example.com')
  await part(restingCard, 'badge', /^Resting briefly until (\w{3} \d+ \w{3}, )?\d\d:\d\d · 0:[0-3]\d left$/).waitFor()
  assert.match(await part(restingCard, 'reason').textContent() ?? '', /^Reason: HTTP 502 Bad Gateway \(a short rest: the upstream failed, not the account; it is tried again by itself\)$/)
  assert.equal(await restingCard.getByRole('button', { name: 'Enable now' }).isVisible(), true)

  const limitedCard = card(page, 'limited@example.com')
  assert.equal(await part(limitedCard, 'badge').textContent(), 'Active')
  assert.equal(await part(limitedCard, 'limits').textContent(), `Usage limit for GPT-5.3-Codex-Spark (gpt-5.3-codex-spark) until ${clockOf(new Date(resetsAt * 1000).toISOString())}: other models are served`)
  await screenshot(page, 'dashboard-resting-and-model-limit.png')
  assertNoErrors(dashboard)
})
