/**
 * Two requests of one store session at once: a request that loaded the session before another
 * ended it (a login's regenerate(), a logout) must not answer with a cookie naming the ended id.
 * The browser applies Set-Cookie in the order responses arrive, so such a cookie, arriving after
 * the login's, replaced the new session with a dead one: the user was logged out right after
 * logging in. Real sockets; the memory store and a real redis-server.
 */
import type { FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { redisSessionStore } from '../index.ts'
import { memorySessionStore, type SessionStore } from '../sessions/store.ts'
import { startApp } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'
import { startRedis } from './helpers/redis.ts'

const NAME = '__Host-session'

function cookieOf (response: Response): string | undefined {
  const line = (response.headers['set-cookie'] ?? []).find((l) => l.startsWith(`${NAME}=`))
  return line === undefined ? undefined : parseSetCookie(line).value
}

/**
 * An app with the store, `GET /me` and `POST /login?user=` (a regenerate() and a new user), plus
 * what `extra` adds; `send` makes a request carrying the session cookie given.
 */
async function loginApp (t: Test, store: SessionStore, extra: (app: FastifyInstance) => void = () => {}): Promise<{ send (method: string, path: string, cookie?: string): Promise<Response>, logs: Awaited<ReturnType<typeof startApp>>['logs'] }> {
  const s = await startApp({ secureSession: { keys: [randomBytes(32).toString('base64')], store } }, (app: FastifyInstance) => {
    app.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
    app.post<{ Querystring: { user: string } }>('/login', async (request) => {
      request.session.regenerate()
      request.session.set('user', request.query.user)
      return { ok: true }
    })
    extra(app)
  })
  t.teardown(() => s.close())
  return {
    logs: s.logs,
    send: (method, path, cookie) =>
      request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` } })
  }
}

async function raceLoginAgainst (t: Test, store: SessionStore, slowAction: 'touch' | 'set and touch'): Promise<void> {
  let started: () => void = () => {}
  let release: () => void = () => {}
  const reached = new Promise<void>((resolve) => { started = resolve })
  const proceed = new Promise<void>((resolve) => { release = resolve })
  const { send } = await loginApp(t, store, (app) => {
    // A request of the same page (a poll, "keep me signed in") that re-issues the session's cookie.
    app.post('/slow', async (request) => {
      started()
      await proceed
      if (slowAction === 'set and touch') (request.session as unknown as { set (key: string, value: unknown): void }).set('seen', true)
      request.session.touch()
      return { ok: true }
    })
  })

  const first = cookieOf(await send('POST', '/login?user=guest'))
  t.ok(first, 'a first session')
  const slow = send('POST', '/slow', first)
  await reached
  // The login (a new session, the old one destroyed) answers while /slow still holds the old one.
  const login = await send('POST', '/login?user=alice', first)
  const fresh = cookieOf(login)
  t.ok(fresh, 'the login writes the new session\'s cookie')
  t.same(JSON.parse((await send('GET', '/me', fresh)).body), { user: 'alice' }, 'the new session is alice\'s')
  release()
  const late = await slow
  t.equal(late.status, 200, 'the request in flight ends normally')
  // What the browser holds after the late response: its cookie if it sent one, else the login's.
  const held = cookieOf(late) ?? fresh
  t.equal(cookieOf(late), undefined, 'the late response writes no cookie for the session that was ended')
  t.same(JSON.parse((await send('GET', '/me', held)).body), { user: 'alice' }, 'the browser is still logged in as alice')
}

t.test('memory store: a request in flight at login does not replace the new session\'s cookie with the ended one', async (t) => {
  t.test('a renewal (touch)', async (t) => { await raceLoginAgainst(t, memorySessionStore(), 'touch') })
  t.test('a write and a renewal', async (t) => { await raceLoginAgainst(t, memorySessionStore(), 'set and touch') })
})

t.test('Redis store: a request in flight at login does not replace the new session\'s cookie with the ended one', async (t) => {
  if (requirePrograms(t, ['redis-server']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  // The plugin closes its store when the app closes: one store per app.
  const newStore = async (t: Test): Promise<ReturnType<typeof redisSessionStore>> => {
    const store = redisSessionStore({ url: redis.url })
    t.teardown(() => store.close())
    await store.ready()
    return store
  }
  t.test('a renewal (touch)', async (t) => { await raceLoginAgainst(t, await newStore(t), 'touch') })
  t.test('a write and a renewal', async (t) => { await raceLoginAgainst(t, await newStore(t), 'set and touch') })
  t.test('the store says whether it wrote', async (t) => {
    const store = await newStore(t)
    t.equal(await store.set('gone', { user: 'x' }, 60, { existing: true }), false, 'set of an id that is gone: false')
    t.equal(await store.touch('gone', 60), false, 'touch of an id that is gone: false')
    t.equal(await store.set('here', { user: 'x' }, 60), true, 'set of a new id: true')
    t.equal(await store.touch('here', 60), true, 'touch of a live id: true')
    await store.destroy('here')
    t.equal(await store.set('here', { user: 'x' }, 60), false, 'set of a destroyed id (its tombstone): false')
  })
})

/**
 * The same race, the other way round: the request that carries the old cookie reaches the server
 * after the login destroyed that session (the browser sent it before the login's answer came).
 * Its store read finds nothing; expiring "its" cookie would delete the login's new one.
 */
async function arriveAfterLogin (t: Test, store: SessionStore, forgetEnded: () => Promise<void>): Promise<void> {
  const { send, logs } = await loginApp(t, store)
  const expires = (response: Response): boolean =>
    (response.headers['set-cookie'] ?? []).map(parseSetCookie).some((c) => c.name === NAME && c.attributes['max-age'] === '0')

  const first = cookieOf(await send('POST', '/login?user=guest')) as string
  const fresh = cookieOf(await send('POST', '/login?user=alice', first)) as string
  t.ok(fresh, 'the login writes the new session\'s cookie')
  const late = await send('GET', '/me', first)
  t.same(JSON.parse(late.body), { user: null }, 'the old cookie is no session')
  t.notOk(expires(late), 'its answer does not expire the cookie, which the browser may have replaced with the login\'s')
  t.same(JSON.parse((await send('GET', '/me', fresh)).body), { user: 'alice' }, 'the login\'s cookie works')
  t.ok(logs.events('session.expired').some((e) => e.reason === 'not-in-store'), 'the old cookie is still reported')
  // Once the store has forgotten the end (the Redis tombstone's 10 minutes), it is expired as before.
  await forgetEnded()
  t.ok(expires(await send('GET', '/me', first)), 'a cookie of a session ended long ago is expired')
}

t.test('a request with the pre-login cookie arriving after the login does not expire the new cookie', async (t) => {
  t.test('memory store', async (t) => {
    let offset = 0
    const store = memorySessionStore({ now: () => Date.now() + offset })
    await arriveAfterLogin(t, store, async () => { offset += 11 * 60 * 1000 })
  })
  t.test('Redis store', async (t) => {
    if (requirePrograms(t, ['redis-server']) === null) return
    const redis = await startRedis()
    t.teardown(() => redis.close())
    const store = redisSessionStore({ url: redis.url })
    t.teardown(() => store.close())
    await store.ready()
    await arriveAfterLogin(t, store, async () => {
      await redis.cli('EVAL', "for _, k in ipairs(redis.call('KEYS', 'secure-https:r:*')) do redis.call('DEL', k) end return 1", '0')
    })
  })
})
