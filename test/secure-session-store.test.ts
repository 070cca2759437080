import type { FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { memorySessionStore, type SessionStore, type StoredSessionData } from '../sessions/store.ts'
import { secureSessionSchema } from '../schemas/secure-session.ts'
import { startApp } from './helpers/app.ts'
import { fakeClock } from './helpers/clock.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'

const NAME = '__Host-session'

function routes (app: FastifyInstance): void {
  app.get('/read', async (request) => ({ user: request.session.get('user') ?? null, note: request.session.get('note') ?? null }))
  app.post<{ Querystring: { user?: string, note?: string } }>('/set', async (request) => {
    if (request.query.user !== undefined) request.session.set('user', request.query.user)
    if (request.query.note !== undefined) request.session.set('note', request.query.note)
    return { ok: true }
  })
  app.post('/login', async (request) => {
    request.session.regenerate()
    request.session.set('user', 'alice')
    return { ok: true }
  })
  app.post('/logout', async (request) => {
    request.session.delete()
    return { ok: true }
  })
}

function cookieOf (response: Response): string | undefined {
  const line = (response.headers['set-cookie'] ?? []).find((l) => l.startsWith(`${NAME}=`))
  return line === undefined ? undefined : parseSetCookie(line).value
}

t.test('with a store the cookie holds only an encrypted id; data, revocation and logout live in the store', async (t) => {
  const clock = fakeClock(t)
  const store = memorySessionStore()
  const keyBytes = randomBytes(32)
  const s = await startApp({ secureSession: { keys: [keyBytes.toString('base64')], store, idleTimeout: 600, maxAge: 3600 } }, routes)
  t.teardown(() => s.close())
  const send = (method: string, path: string, cookie?: string): Promise<Response> =>
    request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` } })

  const big = 'x'.repeat(10_000)
  const set = await send('POST', `/set?user=alice&note=${big}`)
  const cookie = cookieOf(set)
  t.ok(cookie)
  t.ok((cookie ?? '').length < 300, `the cookie stays small (${(cookie ?? '').length} characters) whatever the session holds`)
  t.equal(store.size, 1, 'the data is in the store')
  const opened = s.app.decodeSecureSession(decodeURIComponent(cookie as string))
  t.ok(opened !== null && typeof opened.get('__sid') === 'string' && opened.get('user') === undefined && opened.get('note') === undefined, 'the payload (opened by @fastify/secure-session) has an id and no data')

  const read = await send('GET', '/read', cookie)
  t.same(JSON.parse(read.body), { user: 'alice', note: big })
  t.equal(read.headers['set-cookie'], undefined)

  const changed = await send('POST', '/set?note=short', cookie)
  t.equal(changed.headers['set-cookie'], undefined, 'a data change rewrites the store, not the cookie')
  t.equal(JSON.parse((await send('GET', '/read', cookie)).body).note, 'short')

  clock.advance(300)
  const renewed = await send('GET', '/read', cookie)
  const renewedCookie = cookieOf(renewed)
  t.ok(renewedCookie, 'idle renewal re-issues the cookie at half the window')

  const login = await send('POST', '/login', renewedCookie)
  const loggedIn = cookieOf(login)
  t.ok(loggedIn)
  t.equal(store.size, 1, 'regenerate destroyed the old stored session')
  t.same(JSON.parse((await send('GET', '/read', renewedCookie)).body).user, null, 'the pre-login cookie no longer finds its session')
  t.match(s.logs.events('session.expired').at(-1), { reason: 'not-in-store' })

  const logout = await send('POST', '/logout', loggedIn)
  t.match((logout.headers['set-cookie'] ?? [])[0], /Max-Age=0/)
  t.equal(store.size, 0, 'logout destroyed it server-side: a copied cookie is worth nothing')
  t.same(JSON.parse((await send('GET', '/read', loggedIn)).body).user, null)

  const tampered = await send('GET', '/read', 'garbage!')
  t.equal(tampered.status, 200)
  t.equal(s.logs.events('session.tampered').at(-1)?.reason, 'malformed')
  t.equal(store.size, 0, 'nothing was stored for the requests without a session')
})

t.test('a store without touch() gets set() on renewal; a failing store fails the request instead of faking an empty session', async (t) => {
  const clock = fakeClock(t)
  const inner = memorySessionStore()
  const calls: string[] = []
  let failing = false
  const store: SessionStore = {
    async get (id) { calls.push('get'); if (failing) throw new Error('store down'); return inner.get(id) },
    async set (id, data: StoredSessionData, ttl) { calls.push(`set ${ttl}`); return inner.set(id, data, ttl) },
    async destroy (id) { calls.push('destroy'); return inner.destroy(id) }
  }
  const s = await startApp({ secureSession: { keys: [randomBytes(32).toString('base64')], store, idleTimeout: 600, maxAge: 3600 } }, routes)
  t.teardown(() => s.close())
  const send = (method: string, path: string, cookie?: string): Promise<Response> =>
    request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` } })
  const cookie = cookieOf(await send('POST', '/set?user=alice'))
  t.same(calls, ['set 600'], 'stored for the idle window')
  clock.advance(400)
  await send('GET', '/read', cookie)
  t.same(calls.slice(1), ['get', 'set 600'], 'renewal without touch() rewrites the data with a new TTL')
  failing = true
  const down = await send('GET', '/read', cookie)
  t.ok(down.status >= 500 && down.status < 600, `the store being down is a server error (${down.status}), not a silent logout`)
})

t.test('the store option is checked at registration', async (t) => {
  const result = secureSessionSchema.safeParse({ store: { get () {} } })
  t.notOk(result.success)
  t.match(result.error?.issues[0]?.message, /get\(id\), set\(id, data, ttlSeconds\) and destroy\(id\)/)
})

t.test('memorySessionStore expires entries, copies data, and sweeps', async (t) => {
  let ms = 0
  const store = memorySessionStore({ now: () => ms })
  const data = { a: 1 }
  await store.set('x', data, 10)
  data.a = 2
  t.same(await store.get('x'), { a: 1 }, 'a copy is stored')
  await store.touch?.('x', 20)
  ms = 15_000
  t.same(await store.get('x'), { a: 1 }, 'touch extended it')
  ms = 20_000
  t.equal(await store.get('x'), null, 'expired')
  t.equal(await store.get('missing'), null)
  for (let i = 0; i < 1000; i++) await store.set(`k${i}`, {}, 1)
  ms = 30_000
  await store.set('last', {}, 1000)
  for (let i = 0; i < 999; i++) await store.set(`k${i}`, {}, 1000)
  t.ok(store.size <= 1000, 'expired entries are swept as writes go on')
  await store.close?.()
  t.equal(store.size, 0)
})

t.test('the memory store does not bring an expired entry back on touch', async (t) => {
  let clock = 1_000_000
  const store = memorySessionStore({ now: () => clock })
  await store.set('a', { user: 'alice' } as unknown as StoredSessionData, 10)
  await store.touch?.('a', 10)
  clock += 5_000
  await store.touch?.('a', 10)
  clock += 9_000
  t.ok(await store.get('a'), 'a touch before the end extends the entry')
  clock += 11_000
  await store.touch?.('a', 10)
  t.equal(await store.get('a'), null, 'a touch after the end does not revive it')
})

t.test('memorySessionStore: a request in flight at logout cannot write the session back', async (t) => {
  const store = memorySessionStore()
  let started: () => void = () => {}
  let release: () => void = () => {}
  const reached = new Promise<void>((resolve) => { started = resolve })
  const proceed = new Promise<void>((resolve) => { release = resolve })
  const s = await startApp({ secureSession: { keys: [randomBytes(32).toString('base64')], store } }, (app) => {
    routes(app)
    app.post('/slow', async (request) => {
      started()
      await proceed
      request.session.set('note', 'late')
      return { ok: true }
    })
  })
  t.teardown(() => s.close())
  const send = (method: string, path: string, cookie?: string): Promise<Response> =>
    request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` } })
  const cookie = cookieOf(await send('POST', '/login'))
  const slow = send('POST', '/slow', cookie)
  await reached
  await send('POST', '/logout', cookie)
  t.same(JSON.parse((await send('GET', '/read', cookie)).body).user, null, 'logged out')
  release()
  t.equal((await slow).status, 200)
  t.same(JSON.parse((await send('GET', '/read', cookie)).body), { user: null, note: null }, 'the copy of the cookie stays logged out')
  t.equal(store.size, 0, 'nothing was written back')
})

t.test('store mode: get(\'__created\') and get(\'__ts\') give the session\'s times, as in cookie mode', async (t) => {
  const store = memorySessionStore()
  const s = await startApp({ secureSession: { keys: [randomBytes(32).toString('base64')], store } }, (app) => {
    routes(app)
    app.get('/times', async (request) => ({ created: request.session.get('__created') ?? null, written: request.session.get('__ts') ?? null }))
  })
  t.teardown(() => s.close())
  const before = Math.floor(Date.now() / 1000)
  const cookie = cookieOf(await request(`${s.url}/login`, { method: 'POST', ca: s.cert ?? undefined }))
  const times = JSON.parse((await request(`${s.url}/times`, { ca: s.cert ?? undefined, headers: { cookie: `${NAME}=${cookie ?? ''}` } })).body) as { created: unknown, written: unknown }
  t.ok(typeof times.created === 'number' && times.created >= before - 1, `__created is the creation time (${String(times.created)})`)
  t.ok(typeof times.written === 'number' && times.written >= before - 1, `__ts is the last write (${String(times.written)})`)
})
