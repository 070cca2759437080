/**
 * The Cookie header's values as the session plugin has @fastify/cookie parse them
 * (decodeCookieValue, sessions/cookie.ts): the same values as cookie@2's default decoder for any
 * header, the sealed session cookie's `%3B` taken without decodeURIComponent; and, over TLS, the
 * same `request.cookies` as a plain @fastify/cookie app, while an app that registered
 * @fastify/cookie with its own decoder keeps it.
 */
import fc from 'fast-check'
import fastifyCookie, { fastifyCookie as cookiePlugin, type CookieSerializeOptions } from '@fastify/cookie'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { decodeCookieValue } from '../sessions/cookie.ts'
import { startApp } from './helpers/app.ts'
import { growth } from './helpers/linear.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'

/** cookie@2's default decoder, as @fastify/cookie parses with it: one value through a whole parse. */
async function defaultDecoder (): Promise<(value: string) => string> {
  // parse() is ready once the plugin has loaded cookie@2 (it does when registered).
  const app = Fastify()
  await app.register(fastifyCookie)
  await app.ready()
  await app.close()
  return (value) => cookiePlugin.parse(`a=${value}`).a as string
}

t.test('decodeCookieValue: what cookie@2\'s default decoder gives, for any value', async (t) => {
  const reference = await defaultDecoder()
  const cases = [
    '', 'plain', '%', '%3', '%3B', '%3b', 'a%3Bb', 'a%3bb', 'a%3Bb%3Bc', 'a%3B%20b', 'a%20b%3Bc', 'a%3Bb%', 'a%3Bb%ZZ',
    '%E0%A4%A', 'x%E2%82%AC%3By', 'x%3By%E2%82%AC', '%3B%3B', 'a%3B', '%3Ba', 'é%3Bü', 'a%3C', 'a%3Xb', '%%3B', '%3B%'
  ]
  for (const value of cases) t.equal(decodeCookieValue(value), reference(value), JSON.stringify(value))

  const piece = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('%', '%3B', '%3b', '%3', '%20', '%E2%82%AC', '%E0%A4', '%ZZ', ';', '=', 'é'))
  fc.assert(fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
    const value = pieces.join('').replace(/[;,\s]/g, '')
    return decodeCookieValue(value) === reference(value)
  }), { numRuns: 3000 })
  t.pass('3000 random values, escapes valid and malformed among them: the same as the default decoder')

  // A sealed cookie's value: base64url halves around an escaped `;`.
  const sealed = `${randomBytes(120).toString('base64url')}%3B${randomBytes(24).toString('base64url')}`
  t.equal(decodeCookieValue(sealed), sealed.replace('%3B', ';'))
  t.equal(decodeCookieValue(sealed), decodeURIComponent(sealed))
})

t.test('decodeCookieValue: linear in the value\'s length, whatever it holds', async (t) => {
  const shapes: Record<string, (n: number) => string> = {
    'escapes only': (n) => '%3B'.repeat(n / 3),
    'one %3B then percent signs': (n) => `a%3B${'%'.repeat(n)}`,
    'valid escapes': (n) => '%20'.repeat(n / 3),
    'malformed escapes': (n) => '%E0'.repeat(n / 3),
    'a sealed cookie': (n) => `${'A'.repeat(n)}%3B${'B'.repeat(32)}`
  }
  for (const [name, make] of Object.entries(shapes)) {
    const grown = growth(make, decodeCookieValue, [1500, 3000, 6000, 12000], { rounds: 21, repeat: 20 })
    t.ok(grown.exponent < 1.5, `${name}: ${grown.text}`)
  }
})

t.test('over TLS: the suite\'s app sees the cookies a plain @fastify/cookie app sees; an app\'s own decoder stays', async (t) => {
  const key = randomBytes(32).toString('base64')
  const routes = (app: import('fastify').FastifyInstance): void => {
    app.get('/cookies', async (request) => ({ ...request.cookies }))
    app.post('/login', async (request) => { request.session.set('user', 'alice'); return { ok: true } })
    app.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
  }
  const suite = await startApp({ secureSession: { keys: [key] } }, routes)
  t.teardown(() => suite.close())
  const plain = Fastify()
  await plain.register(fastifyCookie)
  plain.get('/cookies', async (request) => ({ ...request.cookies }))
  await plain.ready()
  t.teardown(() => plain.close())

  const send = (path: string, cookie?: string, method = 'GET'): Promise<Response> =>
    request(`${suite.url}${path}`, { method, ca: suite.cert ?? undefined, headers: cookie === undefined ? {} : { cookie } })
  const login = parseSetCookie(((await send('/login', undefined, 'POST')).headers['set-cookie'] ?? [])[0] as string)
  t.match(login.value, /^[\w-]+%3B[\w-]+$/, 'the session cookie carries its separator as %3B')
  const header = `${login.name}=${login.value}; a=x%3By; b=%E2%82%AC%3B; c=%E0%A4%A; d=50%; e=%3b; f=plain`
  const seen = JSON.parse((await send('/cookies', header)).body) as Record<string, string>
  const expected = (await plain.inject({ url: '/cookies', headers: { cookie: header } })).json()
  t.same(seen, expected, 'the same values, name for name')
  t.equal(seen[login.name], decodeURIComponent(login.value))
  t.same(JSON.parse((await send('/me', `${login.name}=${login.value}`)).body), { user: 'alice' }, 'and the session opens from it')

  // The shortcut in use: the session cookie's value is not given to decodeURIComponent.
  const realDecode = globalThis.decodeURIComponent
  const given: string[] = []
  globalThis.decodeURIComponent = (value: string) => { given.push(value); return realDecode(value) }
  try {
    await send('/me', `${login.name}=${login.value}; other=a%20b`)
    t.same(given, ['a%20b'], 'the suite: only the other cookie went through decodeURIComponent')
    given.length = 0
    await plain.inject({ url: '/cookies', headers: { cookie: `${login.name}=${login.value}` } })
    t.same(given, [login.value], 'a plain @fastify/cookie app: the session cookie did')
  } finally {
    globalThis.decodeURIComponent = realDecode
  }

  // An app that registered @fastify/cookie itself, with a decoder of its own: left as it is.
  const decoded: string[] = []
  const app = Fastify()
  // @fastify/cookie hands parseOptions to cookie@2's parse (its decode included); its types name the serialize options.
  const parseOptions = { decode: (value: string) => { decoded.push(value); return value.toUpperCase() } } as unknown as CookieSerializeOptions
  await app.register(fastifyCookie, { parseOptions })
  const { default: secureHttps } = await import('../index.ts')
  await app.register(secureHttps, { tls: false, httpsRedirect: false, secureSession: { keys: [key], secure: false } })
  app.get('/cookies', async (request) => ({ ...request.cookies }))
  await app.ready()
  t.teardown(() => app.close())
  const res = await app.inject({ url: '/cookies', headers: { host: 'localhost', cookie: 'a=x%3By' } })
  t.same(res.json(), { a: 'X%3BY' }, 'the app\'s parseOptions.decode still decodes')
  t.same(decoded, ['x%3By'])
})
