/**
 * Switching over from @fastify/secure-session: a cookie it wrote, past the suite's lifetimes, is an
 * expired session, not a replayed one. @fastify/secure-session gave its cookie no Max-Age (or its
 * own), so a browser sending it did nothing wrong; reporting it as `session.tampered`
 * (`replayed-past-expiry`) raised a security alarm for every user whose session was older than
 * SESSION_MAX_AGE on the day of the switch. A cookie the suite wrote keeps its replay verdict.
 */
import fastifySecureSession from '@fastify/secure-session'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { fakeClock } from './helpers/clock.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'

const NAME = '__Host-session'
const DAY = 86400

function cookieOf (response: Response): string | undefined {
  const line = (response.headers['set-cookie'] ?? []).find((l) => l.startsWith(`${NAME}=`))
  return line === undefined ? undefined : parseSetCookie(line).value
}

t.test('a @fastify/secure-session cookie older than SESSION_MAX_AGE is session.expired, a suite cookie replayed as late is session.tampered', async (t) => {
  const clock = fakeClock(t)
  const key = randomBytes(32)
  // The app before the switch: sessions last a week from the last write.
  const plain = Fastify()
  await plain.register(fastifySecureSession, { key, cookieName: NAME, expiry: 7 * DAY, cookie: { path: '/', httpOnly: true, secure: true, sameSite: 'lax' } })
  plain.post('/login', async (request) => { request.session.set('user', 'alice'); return { ok: true } })
  await plain.ready()
  t.teardown(() => plain.close())
  const response = await plain.inject({ method: 'POST', url: '/login' })
  const header = response.headers['set-cookie']
  const peerCookie = parseSetCookie(Array.isArray(header) ? header[0] as string : header as string).value

  const s = await startApp({ secureSession: { keys: [key.toString('base64')] } }, (app) => {
    app.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
    app.post('/login', async (request) => { request.session.set('user', 'bob'); return { ok: true } })
  })
  t.teardown(() => s.close())
  const send = (method: string, path: string, cookie?: string): Promise<Response> =>
    request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` } })
  const suiteCookie = cookieOf(await send('POST', '/login')) as string

  clock.advance(2 * DAY)
  const tamperedBefore = s.logs.events('session.tampered').length
  const migrated = await send('GET', '/me', peerCookie)
  t.same(JSON.parse(migrated.body), { user: null }, 'past SESSION_MAX_AGE (one day) the old app\'s session is over')
  t.equal(s.logs.events('session.tampered').length, tamperedBefore, 'and it is not reported as tampered')
  const expired = s.logs.events('session.expired').at(-1)
  t.match(expired, { reason: 'max-age' }, 'it is reported as expired (max-age)')
  t.equal((migrated.headers['set-cookie'] ?? []).map(parseSetCookie).find((c) => c.name === NAME)?.attributes['max-age'], '0', 'and expired in the browser')

  const replayed = await send('GET', '/me', suiteCookie)
  t.same(JSON.parse(replayed.body), { user: null }, 'the suite\'s own cookie, two days late')
  t.match(s.logs.events('session.tampered').at(-1), { reason: 'replayed-past-expiry' }, 'is still a replay: the suite gave it a Max-Age of one day')
})

t.test('sessionOpener: any key opens, without an expiry test; anything else is null', async (t) => {
  const { sessionOpener } = await import('../sessions/seal.ts')
  const [oldKey, newKey] = [randomBytes(32), randomBytes(32)]
  const plain = Fastify()
  await plain.register(fastifySecureSession, { key: oldKey })
  await plain.ready()
  t.teardown(() => plain.close())
  const open = sessionOpener([newKey, oldKey])
  const encoded = plain.encodeSecureSession(plain.createSecureSession({ user: 'alice', __ts: 1 }))
  t.same(open(encoded), { user: 'alice', __ts: 1 }, 'an old key opens it, however old its __ts')
  t.equal(sessionOpener([newKey])(encoded), null, 'another key does not')
  t.equal(open('garbage'), null)
  t.equal(open(`${encoded.split(';')[0] as string};AAAA`), null, 'a nonce of the wrong length')
  t.equal(open(''), null)
})
