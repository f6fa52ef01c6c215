import { test } from 'node:test'
import assert from 'node:assert/strict'
import { get } from 'node:http'
import { CallbackListener, type RunningServer } from '../../src/login/callback-listener.js'
import { LoginError } from '../../src/login/login-error.js'
import { LoginRecords } from '../../src/login/login-records.js'
import { parseRedirectUrl } from '../../src/login/redirect-url.js'

test('a pasted redirect URL is read with or without its scheme; anything else is refused as invalid_url', () => {
  assert.equal(parseRedirectUrl('  http://localhost:1455/auth/callback?code=c&state=s ').get('code'), 'c')
  assert.equal(parseRedirectUrl('localhost:1455/auth/callback?code=c&state=s').get('state'), 's')
  for (const text of ['', 'hello world', 'http://localhost:1455/?code=c&state=s', 'http://localhost:1455/auth/callback?code=c']) {
    assert.throws(() => parseRedirectUrl(text), (err: unknown) => err instanceof LoginError && err.kind === 'invalid_url' && err.statusCode === 400, JSON.stringify(text))
  }
})

test('login records: expiry reads as expired, the first outcome stays, waiters hear the end', async () => {
  let now = 1000
  const heard: string[] = []
  const records = new LoginRecords<string>(() => now, (id, state) => heard.push(`${id}:${state.status}`))
  records.add('a', 2000)
  records.add('b', 2000)
  const waiting = records.wait('b')
  assert.deepEqual(records.get('a'), { status: 'pending' })
  now = 2000
  assert.equal(records.get('a')?.status, 'expired')
  records.complete('b', 'account-1')
  records.fail('b', new LoginError('access_denied', 'refused'))
  assert.deepEqual(await waiting, { status: 'complete', result: 'account-1' })
  assert.deepEqual(records.get('b'), { status: 'complete', result: 'account-1' })
  records.fail('a', new LoginError('login_expired', 'too late'))
  assert.deepEqual(records.get('a'), { status: 'expired', error: 'too late' })
  assert.deepEqual(heard, ['b:complete', 'a:expired'])
  now += 60 * 60_000
  records.add('c', now + 1000)
  assert.equal(records.get('a'), undefined, 'settled logins are forgotten after an hour')
  await assert.rejects(records.wait('a'))
})

test('the callback listener opens for the first holder, closes after the last, and reopens for a login started while it closes', async () => {
  const events: string[] = []
  let nextPort = 5000
  const listener = new CallbackListener({
    port: 0,
    routes: { callback: async () => ({ status: 200, html: '' }), cancel: async () => ({ status: 200, html: '' }) },
    serve: async (): Promise<RunningServer> => {
      const port = nextPort++
      events.push(`open ${port}`)
      return { port, close: async () => { await new Promise((resolve) => setTimeout(resolve, 20)); events.push(`close ${port}`) } }
    }
  })
  assert.deepEqual(await Promise.all([listener.hold(), listener.hold()]), [5000, 5000])
  listener.release()
  assert.deepEqual(events, ['open 5000'], 'one holder left')
  listener.release()
  assert.equal(await listener.hold(), 5000, 'a login started before the close began keeps the open listener')
  listener.release()
  await new Promise(setImmediate) // the close has begun
  assert.equal(await listener.hold(), 5001, 'a login started while closing waits for the close and gets a new listener')
  assert.deepEqual(events, ['open 5000', 'close 5000', 'open 5001'])
  await listener.close()
  assert.deepEqual(events.at(-1), 'close 5001')
})

test('a busy port that stays busy is a port_busy LoginError; other listen errors pass through', async () => {
  let attempts = 0
  const busy = new CallbackListener({
    port: 1,
    retryDelayMs: 1,
    routes: { callback: async () => ({ status: 200, html: '' }), cancel: async () => ({ status: 200, html: '' }) },
    serve: async () => { attempts++; throw Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }) }
  })
  await assert.rejects(busy.hold(), (err: unknown) => err instanceof LoginError && err.kind === 'port_busy' && /callback port 1 is in use/.test(err.message))
  assert.equal(attempts, 10)
  const denied = new CallbackListener({
    port: 80,
    routes: { callback: async () => ({ status: 200, html: '' }), cancel: async () => ({ status: 200, html: '' }) },
    serve: async () => { throw Object.assign(new Error('listen EACCES'), { code: 'EACCES' }) }
  })
  await assert.rejects(denied.hold(), /EACCES/)
})

test('GET /cancel on the callback port is refused to web pages of other sites and to foreign host names', async (t) => {
  const { serveCallbacks } = await import('../../plugins/oauth.js')
  let cancelled = 0
  const server = await serveCallbacks(0, { callback: async () => ({ status: 200, html: '' }), cancel: async () => { cancelled++; return { status: 200, html: 'cancelled' } } })
  t.after(() => server.close())
  // node:http rather than fetch, which would not send a Host header of ours.
  const cancel = async (headers: Record<string, string>): Promise<number> => await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port: server.port, path: '/cancel', headers }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode ?? 0))
    }).on('error', reject)
  })
  assert.equal(await cancel({ 'sec-fetch-site': 'cross-site' }), 403, 'an <img> on another site')
  assert.equal(await cancel({ origin: 'https://evil.example' }), 403, 'an older browser, from another origin')
  assert.equal(await cancel({ host: `evil.example:${server.port}` }), 403, 'a rebound DNS name')
  assert.equal(cancelled, 0, 'nothing was cancelled')
  assert.equal(await cancel({}), 200, 'a program on this machine (as Codex does)')
  assert.equal(cancelled, 1)
})
