import formbody from '@fastify/formbody'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { loadConfig } from '../index.ts'
import { startApp, type StartedApp } from './helpers/app.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'

const NAME = '__Host-session'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

function cookieOf (response: Response): string | undefined {
  const line = (response.headers['set-cookie'] ?? []).find((l) => l.startsWith(`${NAME}=`))
  return line === undefined ? undefined : parseSetCookie(line).value
}

async function start (t: { teardown (fn: () => unknown): void }, csrf: boolean): Promise<StartedApp> {
  const s = await startApp({ secureSession: { keys: [randomBytes(32).toString('base64')], csrf } }, async (app) => {
    await app.register(formbody)
    app.get('/form', async (_request, reply) => ({ token: reply.generateCsrf() }))
    app.post('/action', async () => ({ done: true }))
    app.post('/login', async (request) => {
      request.session.regenerate()
      request.session.set('user', 'alice')
      return { ok: true }
    })
    app.post('/webhook', { config: { csrf: false } }, async () => ({ hook: true }))
  })
  t.teardown(() => s.close())
  return s
}

t.test('csrf: true checks a session-bound token on unsafe methods', async (t) => {
  const s = await start(t, true)
  const send = (method: string, path: string, options: { cookie?: string, body?: string, headers?: Record<string, string> } = {}): Promise<Response> =>
    request(`${s.url}${path}`, {
      method,
      ca: s.cert ?? undefined,
      body: options.body,
      headers: { ...(options.headers ?? {}), ...(options.cookie === undefined ? {} : { cookie: `${NAME}=${options.cookie}` }) }
    })

  const form = await send('GET', '/form')
  const { token } = JSON.parse(form.body) as { token: string }
  const cookie = cookieOf(form)
  t.ok(token, 'reply.generateCsrf() gives a token for the form')
  t.ok(cookie, 'its secret is kept in the (encrypted) session')

  t.equal((await send('POST', '/action', { cookie, body: '', headers: FORM })).status, 403, 'no token: 403')
  t.equal((await send('POST', '/action', { cookie, body: '_csrf=forged', headers: FORM })).status, 403, 'a wrong token: 403')
  t.equal((await send('POST', '/action', { body: `_csrf=${encodeURIComponent(token)}`, headers: FORM })).status, 403, 'the token without its session: 403')
  // Each refusal is a security event, as a refused cross-site request is.
  const events = s.logs.events('csrf.rejected')
  t.same(events.map((event) => event.reason), ['invalid-token', 'invalid-token', 'missing-secret'], 'one csrf.rejected event each, with why')
  t.ok(events.every((event) => event.method === 'POST'), 'naming the method')
  t.notOk(events.some((event) => JSON.stringify(event).includes('_csrf=') || JSON.stringify(event).includes(token)), 'never the token')

  const other = await send('GET', '/form')
  t.ok(cookieOf(other), 'the other visitor has a session of its own')
  t.equal((await send('POST', '/action', { cookie: cookieOf(other), body: `_csrf=${encodeURIComponent(token)}`, headers: FORM })).status, 403,
    'a token from another session: 403')

  const ok = await send('POST', '/action', { cookie, body: `_csrf=${encodeURIComponent(token)}`, headers: FORM })
  t.equal(ok.status, 200, 'the form field _csrf with its session: accepted')
  t.same(JSON.parse(ok.body), { done: true })
  t.equal((await send('POST', '/action', { cookie, headers: { 'x-csrf-token': token } })).status, 200, 'or the x-csrf-token header')
  t.equal((await send('GET', '/form', { cookie })).status, 200, 'safe methods are not checked')
  t.equal((await send('POST', '/webhook')).status, 200, 'a route with config.csrf false is exempt')

  const login = await send('POST', '/login', { cookie, headers: { 'x-csrf-token': token } })
  t.equal(login.status, 200)
  const after = cookieOf(login)
  t.ok(after, 'login issued a new session cookie')
  t.equal((await send('POST', '/action', { cookie: after, headers: { 'x-csrf-token': token } })).status, 403,
    'regenerate at login drops the secret: a token from before login is worth nothing after it')
})

t.test('without csrf the check is off', async (t) => {
  const s = await start(t, false)
  const response = await request(`${s.url}/action`, { method: 'POST', ca: s.cert ?? undefined })
  t.equal(response.status, 200)
})

t.test('SESSION_CSRF reads as the csrf option, strictly', async (t) => {
  const on = loadConfig({ SESSION_CSRF: 'true' })
  t.equal(on.secureSession !== false && on.secureSession.csrf, true)
  const off = loadConfig({})
  t.equal(off.secureSession !== false && off.secureSession.csrf, false, 'off by default')
  t.throws(() => loadConfig({ SESSION_CSRF: 'maybe' }), /SESSION_CSRF: "maybe" is not a boolean/)
})
