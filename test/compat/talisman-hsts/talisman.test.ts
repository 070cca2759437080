/**
 * Flask-Talisman's HSTS and redirect tests (wntrblm/flask-talisman flask_talisman/talisman_test.py:
 * testForceSslOptionOptions, testHstsOptions, testDecoratorForceHttps, testBadEndpoint) as a
 * specification, ported to tap against the suite over real sockets, behind a trusted proxy on
 * loopback as Talisman's tests send `X-Forwarded-Proto`. Talisman's header tests belong with the
 * security headers. Differences are listed in docs/compat.md.
 */
import t from 'tap'
import { startApp } from '../../helpers/app.ts'
import { request } from '../../helpers/http.ts'
import type { SecureHttpsOptions } from '../../../index.ts'

const KEY = Buffer.from('eb5dc57901b9a576e6e55d7f5d8e6f81d284a5a0dcc31b30f7c8c02c237847f1', 'hex').toString('base64')
const STS = 'strict-transport-security'

async function talisman (t: { teardown (fn: () => unknown): void }, options: SecureHttpsOptions = {}) {
  const s = await startApp({
    production: true,
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['127.0.0.1'] },
    allowedHosts: ['app.test'],
    secureSession: { keys: [KEY] },
    ...options
  }, (app) => {
    app.get('/', async () => 'Hello, world')
    app.get('/noforcehttps', { config: { hsts: false } }, async () => 'Hello, world')
  })
  t.teardown(() => s.close())
  const get = (path: string, headers: Record<string, string> = {}) => request(`http://127.0.0.1:${s.port}${path}`, { headers: { host: 'app.test', ...headers } })
  return get
}

t.test('testForceSslOptionOptions', async (t) => {
  const get = await talisman(t)
  t.equal((await get('/', { 'x-forwarded-proto': 'https' })).status, 200, 'HTTPS at the proxy is served')
  const plain = await get('/')
  // Difference: permanent (301) in production; Talisman's default is 302 (force_https_permanent=False).
  t.equal(plain.status, 301)
  t.match(plain.headers.location, /^https:\/\//)
  const off = await talisman(t, { httpsRedirect: false })
  t.equal((await off('/')).status, 200, 'with the redirect off the request is allowed')
})

t.test('testHstsOptions', async (t) => {
  const get = await talisman(t, { httpsRedirect: false })
  t.notOk((await get('/')).headers[STS], 'no HSTS for plain HTTP')
  const off = await talisman(t, { hsts: false })
  t.notOk((await off('/', { 'x-forwarded-proto': 'https' })).headers[STS], 'HSTS off')
  const on = await get('/', { 'x-forwarded-proto': 'https' })
  // Difference: includeSubDomains is opt-in here (Talisman: on by default); one year, not 31556926 s.
  t.equal(on.headers[STS], 'max-age=31536000', 'HSTS through the proxy')
  const subdomains = await talisman(t, { hsts: { includeSubDomains: true } })
  t.equal((await subdomains('/', { 'x-forwarded-proto': 'https' })).headers[STS], 'max-age=31536000; includeSubDomains')
  const preload = await talisman(t, { hsts: { includeSubDomains: true, preload: true } })
  t.match((await preload('/', { 'x-forwarded-proto': 'https' })).headers[STS], /preload/)
})

t.test('testDecoratorForceHttps: a route without HSTS', async (t) => {
  // Difference: a route opts out of HSTS (config.hsts: false) but not of the redirect, whose
  // exemptions are paths in httpsRedirect.exempt (a per-route opt-out would be one more way to
  // serve a page over plain HTTP by mistake).
  const get = await talisman(t, { httpsRedirect: { exempt: ['/noforcehttps'] } })
  t.equal((await get('/noforcehttps')).status, 200)
  t.notOk((await get('/noforcehttps', { 'x-forwarded-proto': 'https' })).headers[STS])
})

t.test('testBadEndpoint', async (t) => {
  const get = await talisman(t)
  t.equal((await get('/bad_endpoint')).status, 301, 'an unknown path over HTTP is redirected first')
  t.equal((await get('/bad_endpoint', { 'x-forwarded-proto': 'https' })).status, 404)
})
