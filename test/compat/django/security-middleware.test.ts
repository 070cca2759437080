/**
 * Django's SecurityMiddleware tests (django/django tests/middleware/test_security.py: HSTS, SSL
 * redirect, redirect exempt, referrer policy, nosniff, COOP) as a specification, ported to tap
 * against the suite's plugins over real sockets. Django's `secure=True` request is a request from a
 * trusted proxy with `X-Forwarded-Proto: https` (Django's SECURE_PROXY_SSL_HEADER), its test
 * server's host `testserver`. Where an expectation differs, docs/compat.md says how and why.
 */
import t from 'tap'
import { startApp } from '../../helpers/app.ts'
import { request } from '../../helpers/http.ts'
import type { SecureHttpsOptions } from '../../../index.ts'

const KEY = Buffer.from('6fdbde6596f13caea4ada65bb541b8651f3b46b1ce04eddebce468a5bb0fbd4c', 'hex').toString('base64')
const STS = 'strict-transport-security'

/** A production app behind a trusted proxy on loopback, for host `testserver`. */
async function django (t: { teardown (fn: () => unknown): void }, options: SecureHttpsOptions = {}, routes?: Parameters<typeof startApp>[1]) {
  const s = await startApp({
    production: true,
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['127.0.0.1'] },
    allowedHosts: ['testserver'],
    secureSession: { keys: [KEY] },
    ...options
  }, routes ?? ((app) => {
    app.get('/some/url', async () => 'content')
    app.get('/insecure/page', async () => 'insecure')
    app.get('/preset', async (_request, reply) => reply.header('strict-transport-security', 'max-age=7200').header('x-content-type-options', 'foo').send('preset'))
  }))
  t.teardown(() => s.close())
  const get = (path: string, secure: boolean, headers: Record<string, string> = {}) =>
    request(`http://127.0.0.1:${s.port}${path}`, { headers: { host: 'testserver', ...(secure ? { 'x-forwarded-proto': 'https' } : {}), ...headers } })
  return { s, get }
}

t.test('test_sts_on: HSTS_SECONDS=3600 gives max-age=3600', async (t) => {
  const { get } = await django(t, { hsts: { maxAge: 3600 } })
  t.equal((await get('/some/url', true)).headers[STS], 'max-age=3600')
})

t.test('test_sts_already_present: a route\'s own header is not overridden', async (t) => {
  const { get } = await django(t, { hsts: { maxAge: 3600 } })
  t.equal((await get('/preset', true)).headers[STS], 'max-age=7200')
})

t.test('test_sts_only_if_secure: never over plain HTTP', async (t) => {
  const { get } = await django(t, { hsts: { maxAge: 3600 }, httpsRedirect: { exempt: ['/some/url'] } })
  const res = await get('/some/url', false)
  t.equal(res.status, 200)
  t.notOk(res.headers[STS])
})

t.test('test_sts_off: max-age 0 (here: the hsts section off)', async (t) => {
  // Difference: HSTS_MAX_AGE=0 sends max-age=0 (tells browsers to forget the policy, RFC 6797
  // section 6.1.1); turning HSTS off is `hsts: false`. docs/compat.md.
  const { get } = await django(t, { hsts: false })
  t.notOk((await get('/some/url', true)).headers[STS])
  const zero = await django(t, { hsts: { maxAge: 0 } })
  t.equal((await zero.get('/some/url', true)).headers[STS], 'max-age=0')
})

t.test('test_sts_include_subdomains and test_sts_no_include_subdomains', async (t) => {
  const on = await django(t, { hsts: { maxAge: 600, includeSubDomains: true } })
  t.equal((await on.get('/some/url', true)).headers[STS], 'max-age=600; includeSubDomains')
  const off = await django(t, { hsts: { maxAge: 600, includeSubDomains: false } })
  t.equal((await off.get('/some/url', true)).headers[STS], 'max-age=600')
})

t.test('test_sts_preload, test_sts_subdomains_and_preload, test_sts_no_preload', async (t) => {
  // Difference: preload without includeSubDomains and a year of max-age is refused at start (the
  // preload list's own rules), so Django's max-age=10886400; preload is a ConfigError here.
  await t.rejects(django(t, { hsts: { maxAge: 10886400, preload: true } }), /preload requires/)
  const both = await django(t, { hsts: { maxAge: 31536000, includeSubDomains: true, preload: true } })
  t.equal((await both.get('/some/url', true)).headers[STS], 'max-age=31536000; includeSubDomains; preload')
  const none = await django(t, { hsts: { maxAge: 10886400, preload: false } })
  t.equal((await none.get('/some/url', true)).headers[STS], 'max-age=10886400')
})

t.test('test_content_type_on, test_content_type_already_present, test_content_type_off', async (t) => {
  const { get } = await django(t)
  t.equal((await get('/some/url', true)).headers['x-content-type-options'], 'nosniff')
  t.equal((await get('/preset', true)).headers['x-content-type-options'], 'foo')
  const off = await django(t, { securityHeaders: { xContentTypeOptions: false } })
  t.notOk((await off.get('/some/url', true)).headers['x-content-type-options'])
})

t.test('test_ssl_redirect_on, test_no_redirect_ssl, test_ssl_redirect_off', async (t) => {
  const { get } = await django(t)
  const redirected = await get('/some/url?query=string', false)
  t.equal(redirected.status, 301)
  t.equal(redirected.headers.location, 'https://testserver/some/url?query=string')
  t.equal((await get('/some/url', true)).status, 200, 'a secure request is not redirected')
  const off = await django(t, { httpsRedirect: false })
  t.equal((await off.get('/some/url', false)).status, 200, 'no redirect when it is off')
})

t.test('test_redirect_exempt', async (t) => {
  // Difference: exempt entries are exact paths, not regular expressions (a pattern is easy to get
  // wrong in the permissive direction).
  const { get } = await django(t, { httpsRedirect: { exempt: ['/insecure/page'] } })
  t.equal((await get('/insecure/page', false)).status, 200)
  t.equal((await get('/some/url', false)).status, 301)
})

t.test('test_redirect_ssl_host: redirects go to the request\'s own allowed host only', async (t) => {
  // Difference: no SECURE_SSL_HOST; the redirect keeps the request's host, and only when it is in
  // ALLOWED_HOSTS (Django's ALLOWED_HOSTS check happens elsewhere, in get_host()).
  const { get } = await django(t, { allowedHosts: ['testserver', 'secure.example.com'] })
  const res = await get('/some/url', false, { host: 'secure.example.com' })
  t.equal(res.headers.location, 'https://secure.example.com/some/url')
  const unknown = await get('/some/url', false, { host: 'evil.test' })
  t.equal(unknown.status, 400, 'a host not allowed is refused (DisallowedHost in Django)')
})

t.test('test_referrer_policy', async (t) => {
  // Difference: a policy is sent by default (the securityHeaders plugin's; docs/security-headers.md);
  // Django's test predates its same-origin default and expects none.
  const { get } = await django(t)
  t.ok((await get('/some/url', true)).headers['referrer-policy'], 'a Referrer-Policy by default')
  for (const policy of ['no-referrer', 'no-referrer-when-downgrade', 'origin', 'origin-when-cross-origin', 'same-origin', 'strict-origin', 'strict-origin-when-cross-origin', 'unsafe-url'] as const) {
    const app = await django(t, { securityHeaders: { referrerPolicy: { policy } } })
    t.equal((await app.get('/some/url', true)).headers['referrer-policy'], policy, policy)
  }
  const off = await django(t, { securityHeaders: { referrerPolicy: false } })
  t.notOk((await off.get('/some/url', true)).headers['referrer-policy'])
})

t.test('test_coop_default, test_coop_on, test_coop_off', async (t) => {
  const { get } = await django(t)
  t.equal((await get('/some/url', true)).headers['cross-origin-opener-policy'], 'same-origin', 'same-origin by default, as Django')
  for (const policy of ['same-origin', 'same-origin-allow-popups', 'unsafe-none'] as const) {
    const app = await django(t, { securityHeaders: { crossOriginOpenerPolicy: { policy } } })
    t.equal((await app.get('/some/url', true)).headers['cross-origin-opener-policy'], policy, policy)
  }
  const off = await django(t, { securityHeaders: { crossOriginOpenerPolicy: false } })
  t.notOk((await off.get('/some/url', true)).headers['cross-origin-opener-policy'])
})
