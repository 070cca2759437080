/**
 * Sealing a session from the object it keeps its values in (plugins/secure-session.ts, sessions/seal.ts):
 * a session opened from the cache of opened cookies is made by the suite with
 * `createSecureSession(values)`, and @fastify/secure-session keeps and writes to that very object,
 * so the seal reads it instead of copying it through `data()`. What the route changes, however it
 * changes it (set, property assignment, regenerate, delete of a value), is what `get()` reads
 * (detached too), what the next request and a plain @fastify/secure-session app read back; and
 * where the object is not the session's own (a peer that copies), the check at start says so and
 * the seal copies as before.
 */
import fastifySecureSession from '@fastify/secure-session'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { peerKeepsValues } from '../plugins/secure-session.ts'
import type { PeerSession } from '../sessions/cookie-view.ts'
import { sessionSealer } from '../sessions/seal.ts'
import { startApp } from './helpers/app.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'

const NAME = '__Host-session'

function cookieOf (response: Response): string | undefined {
  const header = response.headers['set-cookie']
  const lines = Array.isArray(header) ? header : typeof header === 'string' ? [header] : []
  const line = lines.find((l) => l.startsWith(`${NAME}=`))
  return line === undefined ? undefined : parseSetCookie(line).value
}

async function plainApp (key: Buffer): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifySecureSession, { key, cookieName: NAME })
  await app.ready()
  return app
}

t.test('@fastify/secure-session keeps the object a session is made from, and a copying peer is told apart', async (t) => {
  const app = await plainApp(randomBytes(32))
  t.teardown(() => app.close())
  const create = (data: Record<string, unknown>): PeerSession => app.createSecureSession(data) as unknown as PeerSession
  t.equal(peerKeepsValues(create), true, 'the installed @fastify/secure-session writes set(), touch() and regenerate() to the object it was given')
  // A version that copied what it is given: the object handed over would go stale.
  t.equal(peerKeepsValues((data) => create({ ...data })), false, 'a session made from a copy is not sealed from the object')
  // One that kept the object but wrote elsewhere after regenerate(): also refused.
  t.equal(peerKeepsValues((data) => {
    const session = create(data)
    const regenerate = session.regenerate.bind(session)
    return new Proxy(session, {
      get (target, prop) {
        if (prop === 'regenerate') return (keep?: string[]) => { regenerate(keep); for (const key of Object.keys(data)) delete data[key] }
        return target[prop as string]
      }
    })
  }), false, 'a session whose object loses values it still has is refused')
})

t.test('sealing the object gives what sealing data() gives, value for value', async (t) => {
  const key = randomBytes(32)
  const app = await plainApp(key)
  t.teardown(() => app.close())
  const seal = sessionSealer(key)
  const values = fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== '__ts' && k !== '__proto__'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 })
  let runs = 0
  fc.assert(fc.property(values, fc.jsonValue({ maxDepth: 1 }), (data, added) => {
    runs++
    const object: Record<string, unknown> = JSON.parse(JSON.stringify(data))
    const session = app.createSecureSession(object) as unknown as PeerSession
    session.set('added', added)
    const fromObject = seal(session, object)
    const fromCopy = seal(session)
    const a = app.decodeSecureSession(fromObject.value)
    const b = app.decodeSecureSession(fromCopy.value)
    return a !== null && b !== null && JSON.stringify(sorted(a.data())) === JSON.stringify(sorted(b.data())) &&
      a.get('__ts') === b.get('__ts') && fromObject.ts === fromCopy.ts && fromObject.text === JSON.stringify(object)
  }), { numRuns: 300 })
  t.equal(runs, 300, '300 sessions of random JSON values, each opened the same from the object and from the copy')
})

function sorted (data: object | undefined): Array<[string, unknown]> {
  return Object.entries(data ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

t.test('over TLS: what a route changes in a session opened from the cache is what comes back', async (t) => {
  const key = randomBytes(32)
  const s = await startApp({ secureSession: { keys: [key.toString('base64')] } }, async (app) => {
    const session = (request: { session: unknown }): PeerSession => request.session as PeerSession
    app.post('/login', async (request) => {
      session(request).set('user', 'alice')
      session(request).set('role', 'admin')
      return { ok: true }
    })
    app.get('/me', async (request) => ({ data: request.session.data() ?? null }))
    app.post('/count', async (request) => {
      // Detached, as @fastify/secure-session's methods may be called.
      const get = session(request).get
      const n = get('n')
      // Property assignment, as @fastify/secure-session's proxy allows.
      ;(request.session as unknown as Record<string, unknown>).n = (typeof n === 'number' ? n : 0) + 1
      return { n: get('n'), user: session(request).get('user') }
    })
    app.post('/demote', async (request) => {
      session(request).regenerate(['user', 'n'])
      session(request).set('role', undefined)
      session(request).set('demoted', true)
      return { ok: true }
    })
  })
  t.teardown(() => s.close())
  const plain = await plainApp(key)
  t.teardown(() => plain.close())
  const call = (method: string, path: string, cookie?: string): Promise<Response> =>
    request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` } })

  let cookie = cookieOf(await call('POST', '/login'))
  t.ok(cookie, 'login writes a cookie')
  // The login's cookie was kept in the cache when it was sealed: every request below opens from it.
  for (let i = 1; i <= 3; i++) {
    const response = await call('POST', '/count', cookie)
    t.same(JSON.parse(response.body), { n: i, user: 'alice' }, 'get(), detached or not, reads what set() and assignment wrote')
    cookie = cookieOf(response)
    t.ok(cookie, `count ${i} writes a cookie`)
  }
  t.same(JSON.parse((await call('GET', '/me', cookie)).body).data, { user: 'alice', role: 'admin', n: 3 }, 'three writes from cached sessions, each seen by the next')

  const demoted = await call('POST', '/demote', cookie)
  cookie = cookieOf(demoted)
  t.same(JSON.parse((await call('GET', '/me', cookie)).body).data, { user: 'alice', n: 3, demoted: true }, 'regenerate() dropped role, set(undefined) kept it out')

  const opened = plain.decodeSecureSession(decodeURIComponent(cookie as string))
  t.same(sorted(opened?.data()), sorted({ user: 'alice', n: 3, demoted: true, __created: opened?.get('__created') }), 'a plain @fastify/secure-session app reads the same values')
  t.type(opened?.get('__created'), 'number', 'with the suite\'s creation time')
})

t.test('the view\'s get() reads the session\'s own object: the peer\'s answer after any change, its get() without the object', async (t) => {
  const app = await plainApp(randomBytes(32))
  t.teardown(() => app.close())
  const { CookieViewState, cookieView } = await import('../sessions/cookie-view.ts')
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), key: fc.constantFrom('a', 'b', 'c', 'changed', '__ts'), value: fc.jsonValue({ maxDepth: 1 }) }),
    fc.record({ kind: fc.constant('assign' as const), key: fc.constantFrom('a', 'b', 'c'), value: fc.jsonValue({ maxDepth: 1 }) }),
    fc.record({ kind: fc.constant('unset' as const), key: fc.constantFrom('a', 'b', 'c') }),
    fc.record({ kind: fc.constant('regenerate' as const), keep: fc.subarray(['a', 'b', 'c']) }),
    fc.record({ kind: fc.constant('touch' as const) })
  )
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.jsonValue({ maxDepth: 1 })), fc.array(op, { maxLength: 12 }), (start, ops) => {
    const values: Record<string, unknown> = { ...start, __ts: 1_800_000_000 }
    const inner = app.createSecureSession(values) as unknown as PeerSession
    const view = cookieView(new CookieViewState(inner, values))
    const keys = ['a', 'b', 'c', 'changed', '__ts', 'missing']
    for (const o of ops) {
      if (o.kind === 'set') view.set(o.key, o.value)
      else if (o.kind === 'assign') view[o.key] = o.value
      else if (o.kind === 'unset') view.set(o.key, undefined)
      else if (o.kind === 'regenerate') view.regenerate(o.keep)
      else view.touch()
      const get = view.get
      if (!keys.every((key) => Object.is(view.get(key), inner.get(key)) && Object.is(get(key), inner.get(key)))) return false
    }
    return true
  }), { numRuns: 500 })
  t.pass('500 random sequences of set, property assignment, regenerate and touch: the same values as the peer\'s get(), detached too')

  const values: Record<string, unknown> = { user: 'alice', __ts: 1_800_000_000 }
  const view = cookieView(new CookieViewState(app.createSecureSession(values) as unknown as PeerSession, values))
  t.equal(view.get, view.get, 'one function per request, where the peer hands out a new proxy of its method on every access')
  // Made without the object (a cookie the peer opened, or a peer that copies): the peer's get().
  const opened = app.createSecureSession({ user: 'bob', __ts: 1_800_000_000 }) as unknown as PeerSession
  const plain = cookieView(new CookieViewState(opened, null))
  t.equal(plain.get('user'), 'bob')
  opened.set('user', 'carol')
  t.equal(plain.get('user'), 'carol', 'read through the peer\'s get()')
})
