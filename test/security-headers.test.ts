import Fastify from 'fastify'
import t from 'tap'
import { securityHeaders } from '../index.js'
import { helmetOptions, staticHeaders } from '../plugins/security-headers.js'
import { securityHeadersSchema } from '../schemas/security-headers.js'
import { startApp } from './helpers/app.js'
import { request } from './helpers/http.js'

t.test('tightened defaults on every response over TLS, errors and 404 included', async (t) => {
  const s = await startApp({ errorHandler: true }, (app) => {
    app.get('/', async () => 'hi')
    app.get('/boom', async () => { throw new Error('database password is hunter2') })
  })
  t.teardown(() => s.close())
  const ca = s.cert as string
  for (const path of ['/', '/missing', '/boom']) {
    const res = await request(`${s.url}${path}`, { ca })
    const csp = String(res.headers['content-security-policy'])
    t.match(csp, /frame-ancestors 'none'/, `${path}: CSP forbids framing`)
    t.match(csp, /upgrade-insecure-requests/, `${path}: CSP upgrades insecure requests`)
    t.match(csp, /default-src 'self'/, `${path}: helmet's default-src`)
    t.equal(res.headers['referrer-policy'], 'strict-origin-when-cross-origin', `${path}: referrer policy`)
    t.equal(res.headers['cross-origin-opener-policy'], 'same-origin', `${path}: COOP`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${path}: nosniff`)
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', `${path}: legacy framing header`)
    t.notOk(res.headers['strict-transport-security'], `${path}: no HSTS from helmet (localhost, and the hsts plugin owns it)`)
  }
})

t.test('helmet options pass through and are validated', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders, {
    contentSecurityPolicy: { directives: { 'img-src': ["'self'", 'https://images.example'] } },
    referrerPolicy: { policy: 'no-referrer' },
    xFrameOptions: false
  })
  app.get('/', async () => 'x')
  const res = await app.inject('/')
  t.match(res.headers['content-security-policy'], /img-src 'self' https:\/\/images\.example/)
  t.match(res.headers['content-security-policy'], /frame-ancestors 'none'/, 'the suite\'s additions stay')
  t.equal(res.headers['referrer-policy'], 'no-referrer')
  t.notOk(res.headers['x-frame-options'])

  const bad = Fastify()
  bad.register(securityHeaders, { hsts: { maxAge: 1 }, xContentTypeOptions: 'yes', crossOriginOpenerPolicy: 3 } as never)
  await t.rejects(Promise.resolve(bad.ready()), /securityHeaders configuration \(3 problems\)[\s\S]*hsts: HSTS belongs to the hsts plugin/)

  const typo = Fastify()
  typo.register(securityHeaders, { contentSecurityPolicyy: true } as never)
  await t.rejects(Promise.resolve(typo.ready()), /unknown option "contentSecurityPolicyy"/)

  const helmetRefuses = Fastify()
  helmetRefuses.register(securityHeaders, { contentSecurityPolicy: { directives: { 'script-src': ["'self'", 'unquoted-keyword;'] } } })
  await t.rejects(Promise.resolve(helmetRefuses.ready()), /securityHeaders: helmet refused the options/)
})

t.test('the static set is computed once: the same values as helmet per request', async (t) => {
  const config = securityHeadersSchema.parse({})
  const headers = new Map(staticHeaders(helmetOptions(config)))
  t.ok(headers.size >= 10, `${headers.size} headers`)
  t.notOk(headers.has('strict-transport-security'))
  t.notOk(headers.has('x-powered-by'))
})

t.test('CSP nonces: a fresh nonce per response, in the header', async (t) => {
  const s = await startApp({ securityHeaders: { enableCSPNonces: true } }, (app) => {
    app.get('/', async (_request, reply) => ({ nonce: reply.cspNonce.script }))
  })
  t.teardown(() => s.close())
  const ca = s.cert as string
  const a = await request(`${s.url}/`, { ca })
  const b = await request(`${s.url}/`, { ca })
  const nonceA = (JSON.parse(a.body) as { nonce: string }).nonce
  const nonceB = (JSON.parse(b.body) as { nonce: string }).nonce
  t.ok(nonceA.length >= 16)
  t.not(nonceA, nonceB, 'each response has its own nonce')
  t.match(String(a.headers['content-security-policy']), `'nonce-${nonceA}'`)
  t.match(String(a.headers['content-security-policy']), /frame-ancestors 'none'/)
  t.notOk(a.headers['strict-transport-security'])
})
