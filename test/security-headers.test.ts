/**
 * The securityHeaders options: @fastify/helmet's under both of helmet's names, validated all at
 * once and before anything listens; the suite's additions (CSP as text, Permissions-Policy,
 * upgrade-insecure-requests off without TLS).
 */
import fastifyHelmet from '@fastify/helmet'
import fc from 'fast-check'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import t from 'tap'
import { ConfigError, resolveConfig, securityHeaders, securityHeadersSchema, type SecureHttpsOptions } from '../index.ts'
import { parsePolicyText, serializePermissionsPolicy } from '../schemas/security-headers.ts'
import { startApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'
import { growth } from './helpers/linear.ts'
import { DEFAULT_CSP, FULL_SET, securityHeadersOf } from './helpers/security-headers.ts'

async function headersFor (options: object, path = '/', html = true): Promise<Record<string, string | undefined>> {
  const app = Fastify()
  await app.register(securityHeaders, options)
  app.get('/', async (_request, reply) => html ? reply.type('text/html').send('<p>x') : { a: 1 })
  const res = await app.inject(path)
  await app.close()
  return res.headers as Record<string, string | undefined>
}

async function refusal (options: unknown): Promise<ConfigError> {
  const app = Fastify()
  app.register(securityHeaders, options as never)
  try {
    await app.ready()
  } catch (error) {
    return error as ConfigError
  } finally {
    await app.close()
  }
  throw new Error('the options were accepted')
}

t.test('tightened defaults on an HTML page over TLS', async (t) => {
  const s = await startApp({}, (app) => { app.get('/', async (_request, reply) => reply.type('text/html').send('<p>hi')) })
  t.teardown(() => s.close())
  const res = await request(`${s.url}/`, { ca: s.cert as string })
  t.strictSame(securityHeadersOf(res.headers), FULL_SET)
  t.notOk(res.headers['strict-transport-security'], 'no HSTS from helmet (localhost, and the hsts plugin owns it)')
  t.notOk(res.headers['x-powered-by'])
})

t.test('helmet\'s options pass through under both names and are validated', async (t) => {
  const headers = await headersFor({
    contentSecurityPolicy: { directives: { imgSrc: ["'self'", 'https://images.example'] } },
    referrerPolicy: { policy: 'no-referrer' },
    frameguard: false,
    noSniff: false,
    dnsPrefetchControl: { allow: true },
    permittedCrossDomainPolicies: { permittedPolicies: 'by-content-type' },
    xssFilter: false,
    ieNoOpen: false,
    hidePoweredBy: true
  })
  t.match(headers['content-security-policy'], /img-src 'self' https:\/\/images\.example/)
  t.match(headers['content-security-policy'], /frame-ancestors 'none'/, 'the suite\'s addition stays')
  t.equal(headers['referrer-policy'], 'no-referrer')
  t.notOk(headers['x-frame-options'])
  t.notOk(headers['x-content-type-options'])
  t.equal(headers['x-dns-prefetch-control'], 'on')
  t.equal(headers['x-permitted-cross-domain-policies'], 'by-content-type')
  t.notOk(headers['x-xss-protection'])
  t.notOk(headers['x-download-options'])

  const twice = await refusal({ frameguard: false, xFrameOptions: { action: 'deny' }, noSniff: true, xContentTypeOptions: true })
  t.ok(twice instanceof ConfigError)
  t.match(twice.message, /securityHeaders configuration \(2 problems\)/)
  t.match(twice.message, /frameguard: X-Frame-Options is set twice, as xFrameOptions and as frameguard \(its older name\); keep one/)
  t.match(twice.message, /noSniff: X-Content-Type-Options is set twice/)
})

t.test('every problem at once, each naming its option and the fix', async (t) => {
  const error = await refusal({
    hsts: { maxAge: 1 },
    xContentTypeOptions: 'yes',
    crossOriginOpenerPolicy: 3,
    referrerPolicy: { policy: 'sometimes' },
    xXssProtection: '1; mode=block',
    frameguard: { action: 'allow-from' },
    contentSecurityPolicy: { directives: { 'scirpt-src': ["'self'"], imgSrc: ['https://a.example\r\nSet-Cookie: x=1'], 'style-src': ['a;b'] }, reportUri: 'x' },
    permissionsPolicy: { geolocaton: [], camera: ["'self'"], fullscreen: ['https://Example.com/path'] },
    contentSecurityPolicyy: true
  })
  t.equal(error.code, 'ERR_SECURE_HTTPS_CONFIG')
  const lines = error.issues.map((issue) => `${issue.path}: ${issue.message}`)
  const expected = [
    /^hsts: HSTS belongs to the hsts plugin/,
    /^xContentTypeOptions: xContentTypeOptions must be true or false/,
    /^crossOriginOpenerPolicy: must be true, false or \{ policy:/,
    /^referrerPolicy/,
    /^xXssProtection: .*mode=block" is not offered/,
    /^frameguard(\.action)?: .*ALLOW-FROM is obsolete/,
    /^contentSecurityPolicy(\.directives)?\.scirpt-src: "scirpt-src" is not a CSP directive browsers know/,
    /^contentSecurityPolicy(\.directives)?\.imgSrc: img-src: the source .* is not printable ASCII/,
    /^contentSecurityPolicy(\.directives)?\.style-src: style-src: the source "a;b" holds ";"/,
    /^contentSecurityPolicy: unknown option "reportUri"/,
    /^permissionsPolicy\.geolocaton: "geolocaton" is not a Permissions-Policy feature/,
    /^permissionsPolicy\.camera: "'self'" is quoted; write self without quotes/,
    /^permissionsPolicy\.fullscreen: "https:\/\/Example\.com\/path" is not an origin as browsers write it; write https:\/\/example\.com/,
    /^\(root\): unknown option "contentSecurityPolicyy"/
  ]
  for (const pattern of expected) t.ok(lines.some((line) => pattern.test(line)), `${String(pattern)} among:\n${lines.join('\n')}`)
})

t.test('what helmet refuses is refused at registration, not on each request', async (t) => {
  const error = await refusal({ contentSecurityPolicy: { directives: { 'script-src': ['self'] } } })
  t.match(error.message, /securityHeaders: helmet refused the options: Content-Security-Policy received an invalid directive value for "script-src". "self" should be quoted/)
  const noDefault = await refusal({ contentSecurityPolicy: { useDefaults: false, directives: { 'img-src': ['*'] } } })
  t.match(noDefault.message, /needs a default-src/)
})

t.test('@fastify/helmet registered beside it, before or after, is refused with the fix', async (t) => {
  const app = Fastify()
  await app.register(fastifyHelmet)
  app.register(securityHeaders)
  await t.rejects(Promise.resolve(app.ready()), { code: 'ERR_SECURE_HTTPS_CONFIG', message: /securityHeaders: @fastify\/helmet is registered on this instance too; remove it/ })
  await app.close()
  const after = Fastify()
  await after.register(securityHeaders)
  await after.register(fastifyHelmet)
  await t.rejects(Promise.resolve(after.ready()), { code: 'ERR_SECURE_HTTPS_CONFIG', message: /securityHeaders: @fastify\/helmet is registered on this instance too/ }, 'registered after it, too')
  await after.close()
})

t.test('without TLS the CSP has no upgrade-insecure-requests: the aggregate sets upgradeInsecureRequests from TLS_MODE', async (t) => {
  const upgradeOf = (options: SecureHttpsOptions) => {
    const config = resolveConfig(options).securityHeaders
    return config === false ? undefined : config.upgradeInsecureRequests
  }
  t.equal(upgradeOf({ tls: { mode: 'off' } }), false, 'TLS_MODE=off')
  t.equal(upgradeOf({ tls: false }), false, 'tls: false')
  t.equal(upgradeOf({}), true, 'TLS in process')
  t.equal(upgradeOf({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] } }), true, 'TLS at a proxy')
  t.equal(upgradeOf({ tls: false, securityHeaders: { upgradeInsecureRequests: true } }), true, 'an explicit value wins')

  const s = await startApp({ tls: false }, (app) => { app.get('/', async (_request, reply) => reply.type('text/html').send('<p>hi')) })
  t.teardown(() => s.close())
  t.match(s.url, /^http:\/\//)
  const res = await request(`${s.url}/`)
  t.equal(res.headers['content-security-policy'], DEFAULT_CSP.replace(';upgrade-insecure-requests', ''), 'over plain HTTP')

  t.notMatch((await headersFor({ upgradeInsecureRequests: false }))['content-security-policy'], /upgrade-insecure-requests/)
  t.match((await headersFor({ upgradeInsecureRequests: false, contentSecurityPolicy: { directives: { upgradeInsecureRequests: [] } } }))['content-security-policy'],
    /;upgrade-insecure-requests$/, 'named in the directives, it stays')
})

t.test('a whole policy as text, sent as written', async (t) => {
  t.equal((await headersFor({ contentSecurityPolicy: "default-src 'self'; img-src * data:;  object-src 'none'" }))['content-security-policy'],
    "default-src 'self';img-src * data:;object-src 'none'")
  for (const [text, problem] of [
    ["default-src 'self'; default-src *", /default-src is given twice/],
    ['default-src a,b', /holds ","/],
    ['defualt-src *', /is not a CSP directive/],
    [' ; ', /is empty/],
    ["default-src 'self'\nX: y", /not printable ASCII/]
  ] as const) {
    t.match((await refusal({ contentSecurityPolicy: text })).message, problem, JSON.stringify(text))
  }
})

t.test('Permissions-Policy: validated, serialized as a structured-field dictionary, on HTML answers only', async (t) => {
  const policy = { camera: [], geolocation: ['self', 'https://maps.example'], fullscreen: '*', 'ch-ua-model': ['self'], payment: 'self' }
  const expected = 'camera=(), geolocation=(self "https://maps.example"), fullscreen=*, ch-ua-model=(self), payment=(self)'
  t.equal((await headersFor({ permissionsPolicy: policy }))['permissions-policy'], expected)
  t.notOk((await headersFor({ permissionsPolicy: policy }, '/', false))['permissions-policy'], 'not on JSON')
  t.notOk((await headersFor({}))['permissions-policy'], 'off by default, as in helmet')
  t.notOk((await headersFor({ permissionsPolicy: {} }))['permissions-policy'], 'an empty policy sends nothing')
  t.equal((await headersFor({ permissionsPolicy: { 'xr-spatial-tracking': ['https://*.example.com:8443'] } }))['permissions-policy'], 'xr-spatial-tracking=("https://*.example.com:8443")')
  for (const [allowlist, problem] of [
    [['*', 'self'], /stands alone/],
    [['none'], /give an empty list \[\]/],
    [['self', 'self'], /listed twice/],
    [['src'], /iframe's allow attribute/],
    [['example.com'], /write origins with their scheme/],
    [['https://example.com/'], /write https:\/\/example\.com/],
    [['https://example.com:443'], /write https:\/\/example\.com/],
    [['https://exa"mple.com'], /is not an origin; write a scheme/],
    [7, /allowlist is '\*'/]
  ] as const) {
    t.match((await refusal({ permissionsPolicy: { camera: allowlist } })).message, problem, JSON.stringify(allowlist))
  }
})

t.test('resolved options parse to themselves (the aggregate passes them again)', async (t) => {
  const once = securityHeadersSchema.parse({
    frameguard: { action: 'DENY' },
    contentSecurityPolicy: { directives: { scriptSrc: new Set(["'self'"]), 'default-src': "'self'" }, reportOnly: true },
    permissionsPolicy: { camera: [] },
    responseKind: 'api'
  })
  t.strictSame(securityHeadersSchema.parse(once), once)
  t.strictSame(once.contentSecurityPolicy, { useDefaults: true, directives: { 'script-src': ["'self'"], 'default-src': ["'self'"] }, reportOnly: true })
  t.strictSame(once.xFrameOptions, { action: 'DENY' })
})

/** The policy text grammar the parser accepts, spelled out: directives of tokens separated by ";". */
const directiveName = fc.constantFrom('default-src', 'script-src', 'img-src', 'style-src', 'frame-ancestors', 'upgrade-insecure-requests', 'report-uri')
const sourceToken = fc.stringMatching(/^[!-+\--:<-~]{1,12}$/)

t.test('policy text: parse(serialize(directives)) is the identity; any text parses or is refused (fast-check)', async (t) => {
  fc.assert(fc.property(fc.uniqueArray(fc.tuple(directiveName, fc.array(sourceToken, { maxLength: 4 })), { selector: ([name]) => name, minLength: 1 }), (entries) => {
    const text = entries.map(([name, sources]) => [name, ...sources].join(' ')).join('; ')
    const parsed = parsePolicyText(text)
    if ('problem' in parsed) throw new Error(`${text}: ${parsed.problem}`)
    t.strictSame(parsed.directives, Object.fromEntries(entries))
  }), { numRuns: 300 })
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => {
    const parsed = parsePolicyText(text)
    if (!('problem' in parsed)) {
      for (const sources of Object.values(parsed.directives)) {
        for (const source of sources as string[]) if (/[;,\s]/.test(source)) throw new Error(`${JSON.stringify(text)} gave the source ${JSON.stringify(source)}`)
      }
    }
  }), { numRuns: 2000 })
})

t.test('Permissions-Policy: every accepted policy serializes to an RFC 8941 dictionary of inner lists (fast-check)', async (t) => {
  const origin = fc.tuple(fc.constantFrom('https://', 'http://'), fc.stringMatching(/^(\*\.)?[a-z][a-z0-9]{0,10}\.(example|test)$/), fc.constantFrom('', ':8443'))
    .map(([scheme, host, port]) => `${scheme}${host}${port}`)
  const allowlist = fc.oneof(fc.constant('*' as const), fc.uniqueArray(fc.oneof(fc.constant('self'), origin), { maxLength: 4 }))
  const feature = fc.constantFrom('camera', 'microphone', 'geolocation', 'fullscreen', 'payment', 'usb', 'ch-ua', 'browsing-topics')
  // sf-dictionary of sf-key "=" ("*" token | inner-list of token "self" and sf-string origins)
  const dictionary = /^[a-z*][a-z0-9_.*-]*=(?:\*|\((?:(?:self|"[^"\\]*")(?: (?:self|"[^"\\]*"))*)?\))(?:, [a-z*][a-z0-9_.*-]*=(?:\*|\((?:(?:self|"[^"\\]*")(?: (?:self|"[^"\\]*"))*)?\)))*$/
  fc.assert(fc.property(fc.dictionary(feature, allowlist, { minKeys: 1 }), (policy) => {
    const parsed = securityHeadersSchema.parse({ permissionsPolicy: policy }).permissionsPolicy
    if (parsed === false) throw new Error('refused')
    const value = serializePermissionsPolicy(parsed)
    if (!dictionary.test(value)) throw new Error(`not a structured-field dictionary: ${value}`)
  }), { numRuns: 500 })
  fc.assert(fc.property(fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.string({ maxLength: 30 }), fc.array(fc.string({ maxLength: 30 }), { maxLength: 3 }))), (policy) => {
    const result = securityHeadersSchema.safeParse({ permissionsPolicy: policy })
    if (result.success && result.data.permissionsPolicy !== false) {
      const value = serializePermissionsPolicy(result.data.permissionsPolicy)
      if (value !== '' && !dictionary.test(value)) throw new Error(`accepted ${JSON.stringify(policy)} as ${value}`)
    }
  }), { numRuns: 2000 })
})

t.test('validation takes time linear in the input\'s length', async (t) => {
  const sources = (n: number) => Array.from({ length: n }, (_, i) => `https://cdn${i}.example`)
  const cases = [
    ['policy text', (n: number) => { const text = `default-src 'self'; img-src ${sources(n).join(' ')}`; return () => parsePolicyText(text) }],
    ['Permissions-Policy allowlist', (n: number) => { const input = { permissionsPolicy: { camera: sources(n) } }; return () => securityHeadersSchema.parse(input) }],
    ['CSP directives', (n: number) => { const input = { contentSecurityPolicy: { directives: { imgSrc: sources(n) } } }; return () => securityHeadersSchema.parse(input) }]
  ] as const
  const sizes = [256, 512, 1024, 2048, 4096]
  for (const [what, build] of cases) {
    // The exponent k of time = c * n^k, fitted over interleaved sizes (test/helpers/linear.ts): 1
    // for linear work, 2 for quadratic (the margin above 1 is for garbage collection, which grows
    // with the live data).
    const fit = growth<() => unknown>(build, (run) => run(), sizes, { rounds: 31, repeat: 1 })
    t.ok(fit.exponent < 1.5, `${what}: time grows as ${fit.text}`)
  }
})

t.test('a plugin that needs the security headers declares the suite\'s plugin name; the decorators are @fastify/helmet\'s (docs/migrating.md)', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(securityHeaders, {})
  const seen: boolean[] = []
  await app.register(fp(async (instance) => {
    seen.push(instance.hasPlugin('@fastify/helmet'), instance.hasReplyDecorator('helmet'), instance.hasReplyDecorator('cspNonce'))
  }, { name: 'needs-headers', dependencies: ['fastify-secure-https/security-headers'] }))
  await app.ready()
  t.same(seen, [false, true, true], 'loads; @fastify/helmet itself is not registered; reply.helmet and reply.cspNonce are there')
})
