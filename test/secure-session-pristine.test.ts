/**
 * A request that brings no session cookie, whose route asks nothing of the session that could change
 * it, answers `changed` and `deleted` without the peer's proxy (sessions/cookie-view.ts, `pristine`).
 * What a route can do to such a session must still be seen: the same Set-Cookie or none as
 * @fastify/secure-session itself writes, route by route, for every way in, including a method kept
 * and called later.
 */
import fastifySecureSession from '@fastify/secure-session'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { secureSession } from '../index.ts'

const KEY = randomBytes(32)
const NAME = 'session'

type Loose = Record<string, unknown> & { touch: () => void }
const loose = (request: FastifyRequest): Loose => request.session as unknown as Loose

/** Each route, and whether @fastify/secure-session writes a cookie for it (checked below too). */
const routes: Record<string, { handler: (request: FastifyRequest) => Promise<unknown>, writes: boolean }> = {
  '/nothing': { handler: async () => 'ok', writes: false },
  '/get': { handler: async (request) => ({ user: request.session.get('user') ?? null }), writes: false },
  '/data': { handler: async (request) => ({ data: request.session.data() ?? null }), writes: false },
  '/options': { handler: async (request) => { request.session.options({ maxAge: 60 }); return 'ok' }, writes: false },
  '/flags': { handler: async (request) => ({ changed: request.session.changed, deleted: request.session.deleted }), writes: false },
  '/read-value': { handler: async (request) => ({ user: loose(request).user ?? null }), writes: false },
  '/set': { handler: async (request) => { request.session.set('user', 'alice'); return 'ok' }, writes: true },
  '/set-then-flags': { handler: async (request) => { request.session.set('user', 'alice'); return { changed: request.session.changed } }, writes: true },
  '/property-write': { handler: async (request) => { loose(request).user = 'alice'; return 'ok' }, writes: true },
  '/changed-true': { handler: async (request) => { request.session.changed = true; return 'ok' }, writes: true },
  '/touch': { handler: async (request) => { request.session.touch(); return 'ok' }, writes: true },
  '/regenerate': { handler: async (request) => { request.session.regenerate(); return 'ok' }, writes: true },
  '/kept-method': {
    // The method is read while the session is untouched, and called after an await.
    handler: async (request) => {
      const touch = loose(request).touch
      await new Promise((resolve) => setImmediate(resolve))
      touch()
      return 'ok'
    },
    writes: true
  },
  '/define': { handler: async (request) => { Object.defineProperty(request.session, 'extra', { value: 1, configurable: true }); return 'ok' }, writes: false },
  '/delete-property': { handler: async (request) => { delete loose(request).user; return 'ok' }, writes: false }
}

async function appOn (plugin: 'suite' | 'peer'): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  if (plugin === 'suite') await app.register(secureSession, { keys: [KEY.toString('base64')], cookieName: NAME, secure: false })
  else await app.register(fastifySecureSession, { key: KEY, cookieName: NAME, cookie: { path: '/', httpOnly: true } })
  for (const [path, { handler }] of Object.entries(routes)) app.get(path, handler)
  await app.ready()
  return app
}

function writes (headers: Record<string, unknown>): boolean {
  const header = headers['set-cookie']
  const lines = Array.isArray(header) ? header as string[] : typeof header === 'string' ? [header] : []
  return lines.some((line) => line.startsWith(`${NAME}=`))
}

t.test('without a cookie: the suite writes a session exactly where @fastify/secure-session does', async (t) => {
  const suite = await appOn('suite')
  const peer = await appOn('peer')
  t.teardown(async () => { await suite.close(); await peer.close() })
  for (const [path, { writes: expected }] of Object.entries(routes)) {
    const [ours, theirs] = await Promise.all([suite.inject({ url: path }), peer.inject({ url: path })])
    t.equal(ours.statusCode, 200, `${path}: 200`)
    t.equal(writes(theirs.headers), expected, `${path}: @fastify/secure-session ${expected ? 'writes' : 'writes no'} cookie`)
    t.equal(writes(ours.headers), expected, `${path}: the suite ${expected ? 'writes' : 'writes no'} cookie`)
  }
})

t.test('without a cookie: the flags read through the view are the peer\'s', async (t) => {
  const suite = await appOn('suite')
  const peer = await appOn('peer')
  t.teardown(async () => { await suite.close(); await peer.close() })
  for (const path of ['/flags', '/set-then-flags']) {
    const [ours, theirs] = await Promise.all([suite.inject({ url: path }), peer.inject({ url: path })])
    t.same(ours.json(), theirs.json(), `${path}: ${ours.body}`)
  }
  t.same((await suite.inject({ url: '/set-then-flags' })).json(), { changed: true }, 'a set() is seen at once')
})

t.test('a cookie written for an untouched-then-changed session opens on the next request', async (t) => {
  const suite = await appOn('suite')
  t.teardown(() => suite.close())
  const first = await suite.inject({ url: '/kept-method' })
  t.ok(writes(first.headers), 'written')
  const login = await suite.inject({ url: '/set' })
  const cookie = (login.cookies as Array<{ name: string, value: string }>).find((c) => c.name === NAME)
  t.ok(cookie, 'a session cookie')
  const me = await suite.inject({ url: '/get', cookies: { [NAME]: (cookie as { value: string }).value } })
  t.same(me.json(), { user: 'alice' }, 'the value set on a session that began pristine is read back')
  t.notOk(writes(me.headers), 'and reading it writes nothing')
})
