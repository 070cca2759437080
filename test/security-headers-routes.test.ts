/**
 * @fastify/helmet's route option, `reply.helmet()`, `reply.cspNonce` and nonce mode, over real TLS
 * sockets with the aggregate (as an app runs) and with inject for the corners. The first tests pin
 * the bugs of the static header list this plugin replaced.
 */
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { ConfigError, securityHeaders, type SecureHttpsOptions } from '../index.ts'
import { startApp, type StartedApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'
import { API_SET, DEFAULT_CSP, FULL_SET, securityHeadersOf } from './helpers/security-headers.ts'

const PAGE = '<!doctype html><p>page'

async function serve (t: Test, options: SecureHttpsOptions, routes: (app: FastifyInstance) => void): Promise<{ s: StartedApp, get: (path: string) => ReturnType<typeof request> }> {
  const s = await startApp({ hsts: { maxAge: 31536000, localhost: true }, ...options }, routes)
  t.teardown(() => s.close())
  return { s, get: (path: string) => request(`${s.url}${path}`, { ca: s.cert as string }) }
}

t.test('regression: the route option is honoured without CSP nonces (the static list ignored it)', async (t) => {
  const { get } = await serve(t, {}, (app) => {
    app.get('/off', { helmet: false }, async (_request, reply) => reply.type('text/html').send(PAGE))
    app.get('/config-off', { config: { helmet: false } }, async (_request, reply) => reply.type('text/html').send(PAGE))
    app.get('/custom', { helmet: { frameguard: false, referrerPolicy: { policy: 'no-referrer' } } }, async (_request, reply) => reply.type('text/html').send(PAGE))
    app.get('/no-hsts', { helmet: { hsts: false } }, async () => ({ a: 1 }))
  })
  for (const path of ['/off', '/config-off']) {
    const res = await get(path)
    t.strictSame(securityHeadersOf(res.headers), {}, `${path}: none of the plugin's headers`)
    t.equal(res.headers['strict-transport-security'], 'max-age=31536000', `${path}: HSTS is the hsts plugin's and stays`)
  }
  const custom = await get('/custom')
  const expected: Record<string, string> = { ...FULL_SET, 'referrer-policy': 'no-referrer' }
  delete expected['x-frame-options']
  t.strictSame(securityHeadersOf(custom.headers), expected, 'the route\'s options over the plugin\'s')
  const noHsts = await get('/no-hsts')
  t.notOk(noHsts.headers['strict-transport-security'], 'hsts: false on a route takes the hsts plugin\'s header off its answers')
  t.strictSame(securityHeadersOf(noHsts.headers), API_SET)
})

t.test('regression: with CSP nonces on, options under helmet\'s older names do not crash the route', async (t) => {
  const { get } = await serve(t, { securityHeaders: { enableCSPNonces: true } }, (app) => {
    app.get('/legacy', { helmet: { frameguard: false, noSniff: false, dnsPrefetchControl: { allow: true } } }, async (_request, reply) => reply.type('text/html').send(PAGE))
    app.get('/decorator', async (_request, reply) => {
      await reply.helmet({ frameguard: { action: 'deny' }, hidePoweredBy: false })
      return reply.type('text/html').send(PAGE)
    })
  })
  const legacy = await get('/legacy')
  t.equal(legacy.status, 200, 'not "X-Frame-Options option was specified twice"')
  t.notOk(legacy.headers['x-content-type-options'])
  t.notOk(legacy.headers['x-frame-options'])
  t.equal(legacy.headers['x-dns-prefetch-control'], 'on')
  t.match(legacy.headers['content-security-policy'], /script-src 'self' 'nonce-[0-9a-f]{32}'/)
  const decorator = await get('/decorator')
  t.equal(decorator.status, 200)
  t.equal(decorator.headers['x-frame-options'], 'DENY', 'reply.helmet() merges frameguard over the plugin\'s xFrameOptions')
})

t.test('regression: nonce mode keeps helmet\'s sources next to the nonces; a fresh nonce per answer, in header and page', async (t) => {
  const { get } = await serve(t, { securityHeaders: { enableCSPNonces: true } }, (app) => {
    app.get('/', async (_request, reply) => reply.type('text/html').send(`<!doctype html><script nonce="${reply.cspNonce.script}"></script><style nonce="${reply.cspNonce.style}"></style>`))
    app.get('/nonce', async (_request, reply) => reply.cspNonce)
  })
  const a = await get('/')
  const b = await get('/')
  const nonceOf = (body: string, kind: string) => (new RegExp(`<${kind} nonce="([0-9a-f]{32})"`).exec(body) as RegExpExecArray)[1] as string
  const [scriptA, styleA, scriptB] = [nonceOf(a.body, 'script'), nonceOf(a.body, 'style'), nonceOf(b.body, 'script')]
  t.not(scriptA, scriptB, 'each answer has its own nonce')
  t.not(scriptA, styleA)
  t.equal(a.headers['content-security-policy'], DEFAULT_CSP
    .replace("script-src 'self'", `script-src 'self' 'nonce-${scriptA}'`)
    .replace("style-src 'self' https: 'unsafe-inline'", `style-src 'self' https: 'unsafe-inline' 'nonce-${styleA}'`))
  const json = await get('/nonce')
  t.match(JSON.parse(json.body), { script: /^[0-9a-f]{32}$/, style: /^[0-9a-f]{32}$/ }, 'reply.cspNonce on a JSON route too')
  t.strictSame(securityHeadersOf(json.headers), API_SET, 'a JSON answer gets the API set, nonce or not')
})

t.test('route options: what @fastify/helmet documents, over TLS', async (t) => {
  const { get } = await serve(t, { securityHeaders: { global: false, enableCSPNonces: true } }, (app) => {
    app.get('/unconfigured', async (_request, reply) => reply.type('text/html').send(PAGE))
    app.get('/configured', { helmet: { contentSecurityPolicy: { directives: { 'img-src': ["'self'", 'https://img.example'] } } } }, async (_request, reply) => reply.type('text/html').send(reply.cspNonce.script))
    app.get('/report-only', { helmet: { enableCSPNonces: false, contentSecurityPolicy: { reportOnly: true, directives: { reportUri: '/csp-report' } } } }, async (_request, reply) => reply.type('text/html').send(PAGE))
    app.get('/applied', async (_request, reply) => {
      await reply.helmet()
      return reply.type('text/html').send(PAGE)
    })
  })
  t.strictSame(securityHeadersOf((await get('/unconfigured')).headers), {}, 'global: false leaves unconfigured routes alone')
  const configured = await get('/configured')
  t.match(configured.headers['content-security-policy'], new RegExp(`img-src 'self' https://img\\.example;.*script-src 'self' 'nonce-${configured.body}'`), 'a route with options gets them, and the plugin\'s nonces')
  const reportOnly = await get('/report-only')
  t.notOk(reportOnly.headers['content-security-policy'])
  t.equal(reportOnly.headers['content-security-policy-report-only'], `${DEFAULT_CSP};report-uri /csp-report`, 'report-only, as the route asks')
  t.strictSame(securityHeadersOf((await get('/applied')).headers), FULL_SET, 'reply.helmet() applies the plugin\'s options on a route global: false left alone')
})

t.test('route options are checked when the route is declared, every problem at once', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders)
  const declare = (options: object) => () => app.get(`/${randomBytes(4).toString('hex')}`, options as never, async () => 'x')
  t.throws(declare({ helmet: 'invalid_options' }), /Invalid securityHeaders route GET \/[0-9a-f]+ configuration \(1 problem\):\n {2}- helmet: a route's helmet option must be false or an options object/)
  t.throws(declare({ helmet: true }), /helmet: a route's helmet option must be false or an options object/)
  t.throws(declare({ helmet: null }), /helmet: a route's helmet option must be false or an options object/)
  let error: unknown
  try {
    declare({ helmet: { frameguard: false, xFrameOptions: true, hsts: { maxAge: 1 }, global: false, contentSecurityPolicy: { directives: { scriptSrc: ['self'] } } }, config: { securityHeaders: 'page' } })()
  } catch (caught) {
    error = caught
  }
  t.ok(error instanceof ConfigError)
  const issues = (error as ConfigError).issues.map((issue) => `${issue.path}: ${issue.message}`).join('\n')
  t.match(issues, /config\.securityHeaders: must be auto, html, api \(got "page"\)/)
  t.match(issues, /helmet\.frameguard: X-Frame-Options is set twice/)
  t.match(issues, /helmet\.hsts: HSTS belongs to the hsts plugin/)
  t.match(issues, /helmet: unknown option "global"/)
  t.throws(declare({ helmet: { contentSecurityPolicy: { directives: { scriptSrc: ['self'] } } } }), /route GET \/[0-9a-f]+: helmet refused the options: .*"self" should be quoted/)
  t.throws(declare({ helmet: false, config: { helmet: false } }), /the helmet option is given twice/)
  await app.close()
})

t.test('a CSP directive computed per request: helmet runs per request, before the handler, as @fastify/helmet runs it', async (t) => {
  const app = Fastify()
  const kNonce = Symbol('nonce')
  type Carrier = { [kNonce]?: string }
  await app.register(securityHeaders, {
    contentSecurityPolicy: {
      directives: {
        scriptSrc: ["'self'", (_req, res) => {
          (res as Carrier)[kNonce] = randomBytes(8).toString('hex')
          return `'nonce-${(res as Carrier)[kNonce] as string}'`
        }]
      }
    }
  })
  app.get('/', async (_request, reply) => reply.type('text/html').send((reply.raw as Carrier)[kNonce]))
  app.get('/plain', { helmet: { contentSecurityPolicy: { directives: { scriptSrc: ["'self'"] } } } }, async () => ({ a: 1 }))
  app.get('/skip', { helmet: false }, async () => ({ a: 1 }))
  const a = await app.inject('/')
  const b = await app.inject('/')
  t.match(a.headers['content-security-policy'], new RegExp(`script-src 'self' 'nonce-${a.body}'`), 'the handler reads what the directive function set')
  t.not(a.body, b.body)
  t.equal(a.headers['x-frame-options'], 'SAMEORIGIN', 'helmet\'s whole set, as with @fastify/helmet')
  const plain = await app.inject('/plain')
  t.strictSame(securityHeadersOf(plain.headers), API_SET, 'a route with static options: what helmet set per request is taken off again')
  t.strictSame(securityHeadersOf((await app.inject('/skip')).headers), {}, 'and helmet: false leaves nothing')
  await app.close()
})

t.test('with nonces on, a route turning them off gets no nonce; helmet: false none either', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders, { enableCSPNonces: true })
  app.get('/on', async (_request, reply) => reply.type('text/html').send(String(reply.cspNonce?.script)))
  app.get('/off', { helmet: { enableCSPNonces: false } }, async (_request, reply) => reply.type('text/html').send(String(reply.cspNonce)))
  app.get('/skip', { helmet: false }, async (_request, reply) => reply.type('text/html').send(String(reply.cspNonce)))
  const on = await app.inject('/on')
  t.match(on.headers['content-security-policy'], `'nonce-${on.body}'`)
  const off = await app.inject('/off')
  t.equal(off.body, 'null')
  t.equal(off.headers['content-security-policy'], DEFAULT_CSP)
  t.equal((await app.inject('/skip')).body, 'null')
  await app.close()
})

t.test('an answer that leaves before the route\'s hook still carries a CSP: without nonces when none was made', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders, { enableCSPNonces: true })
  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/denied') return reply.code(403).type('text/html').send('<p>no')
  })
  app.get('/denied', { helmet: { frameguard: false } }, async () => 'never')
  const denied = await app.inject('/denied')
  t.equal(denied.statusCode, 403)
  t.match(denied.headers['content-security-policy'], /script-src 'self' 'nonce-[0-9a-f]{32}'/, 'the plugin-wide hook ran first: the default plan with its nonce')
  t.equal(denied.headers['x-frame-options'], 'SAMEORIGIN', 'the route\'s options never applied: the plugin\'s')
  await app.close()
})

t.test('reply.helmet(): options checked, HSTS refused, Permissions-Policy included', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders, { global: false, permissionsPolicy: { camera: [] } })
  app.get('/bad', async (_request, reply) => {
    await reply.helmet({ hsts: { maxAge: 1 } } as never)
    return 'x'
  })
  app.get('/pp', async (_request, reply) => {
    await reply.helmet({ referrerPolicy: false })
    return reply.type('text/html').send(PAGE)
  })
  const bad = await app.inject('/bad')
  t.equal(bad.statusCode, 500)
  t.match(bad.json().message, /Invalid reply\.helmet\(\) configuration \(1 problem\):\n {2}- hsts: HSTS belongs to the hsts plugin/)
  const pp = await app.inject('/pp')
  t.equal(pp.headers['permissions-policy'], 'camera=()')
  t.notOk(pp.headers['referrer-policy'])
  t.equal(pp.headers['x-frame-options'], 'SAMEORIGIN')
  await app.close()
})

t.test('reply.helmet() on a route without its own options sets helmet\'s headers; the answer\'s set only fills the gaps', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders)
  app.get('/', async (_request, reply) => {
    await reply.helmet({ referrerPolicy: { policy: 'same-origin' } })
    return { a: 1 }
  })
  const res = await app.inject('/')
  t.equal(res.headers['referrer-policy'], 'same-origin', 'what reply.helmet() set wins')
  t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', 'helmet\'s X-Frame-Options, not the API set\'s DENY')
  t.equal(res.headers['cache-control'], 'no-store', 'the API set adds what helmet does not send')
  await app.close()
})

t.test('regression: nonces land in the right directives when style-src comes before script-src', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders, { enableCSPNonces: true, contentSecurityPolicy: { useDefaults: false, directives: { 'style-src': ["'self'"], 'default-src': ["'self'"], 'script-src': ["'self'"] } } })
  app.get('/', async (_request, reply) => reply.type('text/html').send(JSON.stringify(reply.cspNonce)))
  const res = await app.inject('/')
  const nonce = res.json<{ script: string, style: string }>()
  t.equal(res.headers['content-security-policy'], `style-src 'self' 'nonce-${nonce.style}';default-src 'self';script-src 'self' 'nonce-${nonce.script}'`)
  await app.close()
})
