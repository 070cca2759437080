/**
 * Cross-site request protection (tokenless, on by default): the logic with inject; the browser's
 * side in test/browser-cross-site.test.ts.
 */
import Fastify from 'fastify'
import t from 'tap'
import { crossSite, loadConfig, proxyTrust } from '../index.ts'
import { crossSiteVerdict, ownOrigin } from '../plugins/cross-site.ts'
import { normalizeOrigin } from '../schemas/cross-site.ts'
import { startApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'
import { captureLogs } from './helpers/logs.ts'

async function build (options: Parameters<typeof crossSite>[1] = {}) {
  const logs = captureLogs('info')
  const app = Fastify({ logger: logs.logger })
  await app.register(crossSite, options)
  app.post('/login', async () => 'logged in')
  app.delete('/item', async () => 'deleted')
  app.get('/page', async () => 'page')
  app.post('/webhook', { config: { crossSite: false } }, async () => 'hook')
  app.route({ method: ['GET', 'POST'], url: '/both', handler: async () => 'both' })
  return { app, logs }
}

t.test('Sec-Fetch-Site decides when the browser sends it', async (t) => {
  const { app, logs } = await build()
  const post = async (headers: Record<string, string>, url = '/login', method: 'POST' | 'DELETE' | 'GET' = 'POST') =>
    app.inject({ method, url, headers: { host: 'app.test', ...headers } })
  t.equal((await post({ 'sec-fetch-site': 'same-origin', origin: 'http://app.test' })).statusCode, 200, 'same-origin passes')
  t.equal((await post({ 'sec-fetch-site': 'none' })).statusCode, 200, 'none (typed, bookmarked) passes')
  const cross = await post({ 'sec-fetch-site': 'cross-site', origin: 'https://evil.test' })
  t.equal(cross.statusCode, 403, 'cross-site is refused')
  t.equal(cross.body, 'Forbidden: cross-site request\n')
  t.equal((await post({ 'sec-fetch-site': 'same-site', origin: 'https://sub.app.test' })).statusCode, 403, 'same-site too: a sibling subdomain is another origin')
  t.equal((await post({ 'sec-fetch-site': 'cross-site' }, '/item', 'DELETE')).statusCode, 403, 'every unsafe method')
  t.equal((await post({ 'sec-fetch-site': 'cross-site' }, '/page', 'GET')).statusCode, 200, 'safe methods pass')
  t.equal((await post({ 'sec-fetch-site': 'cross-site' }, '/both', 'GET')).statusCode, 200, 'a GET of a GET+POST route passes')
  t.equal((await post({ 'sec-fetch-site': 'cross-site' }, '/both')).statusCode, 403, 'its POST does not')
  t.equal((await post({ 'sec-fetch-site': 'cross-site' }, '/webhook')).statusCode, 200, 'config.crossSite = false opts a route out')
  const event = await logs.waitFor((line) => line.securityEvent === 'csrf.rejected')
  t.equal(event.method, 'POST')
  t.equal(event.origin, 'https://evil.test')
  t.equal(event.secFetchSite, 'cross-site')
  t.match(event.msg, /\(Sec-Fetch-Site is cross-site\)/)

  // A client writes what it likes in the header: the message never carries it, the field cut short.
  const forged = `xxx) ; accepted, see securityEvent=none; user=admin logged in ${'y'.repeat(8000)}`
  t.equal((await post({ 'sec-fetch-site': forged })).statusCode, 403, 'a value browsers do not send is refused')
  const logged = await logs.waitFor((line) => line.securityEvent === 'csrf.rejected' && String(line.secFetchSite).startsWith('xxx'))
  t.notMatch(logged.msg, /accepted|user=admin|yyy/, 'the message does not quote it')
  t.match(logged.msg, /Sec-Fetch-Site is not a value browsers send/)
  t.equal(String(logged.secFetchSite).length, 103, 'the field has its first 100 characters')
})

t.test('without Sec-Fetch-Site: Origin against the request\'s own origin; neither header passes', async (t) => {
  const { app } = await build()
  const post = async (headers: Record<string, string>) => (await app.inject({ method: 'POST', url: '/login', headers: { host: 'app.test', ...headers } })).statusCode
  t.equal(await post({ origin: 'http://app.test' }), 200, 'the same origin passes')
  t.equal(await post({ origin: 'HTTP://APP.TEST' }), 200, 'in any case')
  t.equal(await post({ origin: 'https://app.test' }), 403, 'another scheme is another origin')
  t.equal(await post({ origin: 'http://app.test:8080' }), 403, 'another port too')
  t.equal(await post({ origin: 'http://evil.test' }), 403)
  t.equal(await post({ origin: 'null' }), 403, 'an opaque origin (sandboxed frame, data: URL) is refused')
  t.equal(await post({}), 200, 'no header at all: not a browser (curl, a server), passes')
})

t.test('trusted origins', async (t) => {
  const { app } = await build({ trustedOrigins: ['https://front.example.com'] })
  const post = async (headers: Record<string, string>) => (await app.inject({ method: 'POST', url: '/login', headers: { host: 'api.example.com', ...headers } })).statusCode
  t.equal(await post({ 'sec-fetch-site': 'cross-site', origin: 'https://front.example.com' }), 200)
  t.equal(await post({ 'sec-fetch-site': 'same-site', origin: 'https://FRONT.example.com' }), 200)
  t.equal(await post({ 'sec-fetch-site': 'cross-site', origin: 'https://front.example.com.evil.test' }), 403)
  t.equal(await post({ origin: 'http://front.example.com' }), 403, 'the scheme is part of the origin')
  t.throws(() => loadConfig({ CROSS_SITE_TRUSTED_ORIGINS: 'https://a.test/path' }), /CROSS_SITE_TRUSTED_ORIGINS/)
  t.throws(() => loadConfig({ CROSS_SITE_TRUSTED_ORIGINS: 'a.test' }), /CROSS_SITE_TRUSTED_ORIGINS/)
  const config = loadConfig({ CROSS_SITE_TRUSTED_ORIGINS: 'https://A.test:443,http://b.test:8080' })
  t.same(config.crossSite !== false && config.crossSite.trustedOrigins, ['https://a.test', 'http://b.test:8080'], 'normalized as browsers write them')
})

t.test('behind a trusted proxy the own origin is what the proxy says', async (t) => {
  const app = Fastify({ trustProxy: ['127.0.0.1'] })
  await app.register(proxyTrust, { trust: ['127.0.0.1'] })
  await app.register(crossSite)
  app.post('/login', async () => 'ok')
  await app.ready()
  const post = async (headers: Record<string, string>, remoteAddress = '127.0.0.1') =>
    (await app.inject({ method: 'POST', url: '/login', remoteAddress, headers: { host: 'app.test', ...headers } })).statusCode
  t.equal(await post({ 'x-forwarded-proto': 'https', origin: 'https://app.test' }), 200, 'https at the proxy')
  t.equal(await post({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'www.app.test', host: 'backend:3000', origin: 'https://www.app.test' }), 200, 'the forwarded host')
  t.equal(await post({ 'x-forwarded-proto': 'https', origin: 'https://app.test' }, '10.0.0.9'), 403, 'an untrusted peer does not make itself https')
})

t.test('units', async (t) => {
  t.equal(ownOrigin(true, 'App.Test:443'), 'https://app.test')
  t.equal(ownOrigin(false, 'app.test:80'), 'http://app.test')
  t.equal(ownOrigin(true, 'app.test:8443'), 'https://app.test:8443')
  t.equal(crossSiteVerdict('OPTIONS', 'https://evil', 'cross-site', new Set(), () => ''), null)
  t.equal(normalizeOrigin('https://a.test/'), 'https://a.test')
  t.equal(normalizeOrigin('https://user@a.test'), null)
  t.equal(normalizeOrigin('ftp://a.test'), null)
  t.equal(normalizeOrigin('https://a.test?x'), null)
})

t.test('through the aggregate the check runs before the session and the app\'s hooks, and covers 404s', async (t) => {
  let childHookRuns = 0
  const s = await startApp({}, async (app) => {
    app.post('/transfer', async () => 'done')
    await app.register(async (child) => {
      child.addHook('onRequest', async () => { childHookRuns++ })
      child.post('/child/transfer', async () => 'done')
      child.setNotFoundHandler(async (_request, reply) => reply.code(404).send('child 404'))
    })
  })
  t.teardown(() => s.close())
  const post = (path: string, headers: Record<string, string>): ReturnType<typeof request> =>
    request(`${s.url}${path}`, { method: 'POST', ca: s.cert ?? undefined, headers: { 'sec-fetch-site': 'cross-site', origin: 'https://evil.test', ...headers } })
  const withCookie = await post('/transfer', { cookie: '__Host-session=garbage!' })
  t.equal(withCookie.status, 403, 'refused')
  t.equal(withCookie.headers['set-cookie'], undefined, 'the session was not opened: no cookie to expire')
  t.equal(s.logs.events('session.tampered').length, 0, 'and no session event for a request refused anyway')
  t.equal((await post('/child/transfer', {})).status, 403)
  t.equal(childHookRuns, 0, 'the app\'s own hooks do not run for a refused request')
  t.equal((await post('/child/missing', {})).status, 403, 'a POST to a path no route has is checked too')
  t.equal(childHookRuns, 0)
})
