/**
 * A header set per kind of answer: helmet's full set for HTML (and for anything not known to be an
 * API answer), the short OWASP REST set for JSON. Over real TLS sockets, and with inject for the
 * corners.
 */
import fc from 'fast-check'
import Fastify, { type FastifyInstance, type FastifySchema } from 'fastify'
import { connect, type IncomingHttpHeaders } from 'node:http2'
import t from 'tap'
import { securityHeaders, type SecurityHeadersOptions } from '../index.ts'
import { isApiAnswer, rememberingApiAnswer } from '../plugins/security-headers-sets.ts'
import { startApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'
import { API_SET, FULL_SET, securityHeadersOf } from './helpers/security-headers.ts'

const PAGE = '<!doctype html><title>page</title><p>hello'

function pageRoutes (app: FastifyInstance): void {
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(PAGE))
  app.get('/api', async () => ({ hello: 'world' }))
  app.get('/problem', async (_request, reply) => reply.code(409).type('application/problem+json').send({ title: 'conflict' }))
  app.get('/text', async () => 'plain text')
  app.get('/boom', async () => { throw new Error('database password is hunter2') })
}

t.test('over TLS: HTML gets the full set, JSON the API set; HEAD, 404 and errors too', async (t) => {
  const s = await startApp({ errorHandler: true, hsts: { maxAge: 31536000, localhost: true } }, pageRoutes)
  t.teardown(() => s.close())
  const ca = s.cert as string
  const expectations: Array<[string, string, Record<string, string>, string]> = [
    ['GET', '/', FULL_SET, 'an HTML page'],
    ['HEAD', '/', FULL_SET, 'HEAD of an HTML page: the headers of its GET'],
    ['GET', '/text', FULL_SET, 'text/plain is not known to be an API answer: full set'],
    ['GET', '/api', API_SET, 'a JSON answer'],
    ['HEAD', '/api', API_SET, 'HEAD of a JSON answer'],
    ['GET', '/problem', API_SET, 'application/problem+json'],
    ['GET', '/missing', API_SET, 'Fastify\'s 404 is JSON'],
    ['GET', '/boom', API_SET, 'the production error handler\'s 500 is JSON']
  ]
  for (const [method, path, expected, what] of expectations) {
    const res = await request(`${s.url}${path}`, { ca, method })
    t.strictSame(securityHeadersOf(res.headers), expected, `${method} ${path}: ${what}`)
    t.equal(res.headers['strict-transport-security'], 'max-age=31536000', `${method} ${path}: HSTS from the hsts plugin in both sets`)
  }
  const boom = await request(`${s.url}/boom`, { ca })
  t.equal(boom.status, 500)
  t.notMatch(boom.body, /hunter2/, 'no internal message in the error answer')
})

t.test('over HTTP/2: the same sets, as lower-case header fields HTTP/2 accepts', async (t) => {
  const s = await startApp({ tls: { http2: true } }, pageRoutes)
  t.teardown(() => s.close())
  const session = connect(s.url, { ca: s.cert as string })
  t.teardown(() => session.close())
  const get = (path: string) => new Promise<IncomingHttpHeaders>((resolve, reject) => {
    const stream = session.request({ ':path': path })
    stream.on('response', (headers) => { stream.resume(); stream.on('end', () => resolve(headers)) })
    stream.on('error', reject)
  })
  t.strictSame(securityHeadersOf(await get('/')), FULL_SET, 'an HTML page')
  t.strictSame(securityHeadersOf(await get('/api')), API_SET, 'a JSON answer')
})

t.test('responseKind html gives every answer the full set, as @fastify/helmet; api the short set unless the answer is HTML', async (t) => {
  for (const [responseKind, json, html, text] of [
    ['html', FULL_SET, FULL_SET, FULL_SET],
    ['api', API_SET, FULL_SET, API_SET],
    ['auto', API_SET, FULL_SET, FULL_SET]
  ] as const) {
    const app = Fastify()
    await app.register(securityHeaders, { responseKind })
    pageRoutes(app)
    t.strictSame(securityHeadersOf((await app.inject('/api')).headers), json, `${responseKind}: JSON`)
    t.strictSame(securityHeadersOf((await app.inject('/')).headers), html, `${responseKind}: HTML`)
    t.strictSame(securityHeadersOf((await app.inject('/text')).headers), text, `${responseKind}: text/plain`)
    await app.close()
  }
})

t.test('a route declares its kind: config.securityHeaders, or a response schema with content types', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders)
  app.get('/declared-api-text', { config: { securityHeaders: 'api' } }, async () => 'ok')
  app.get('/declared-api-empty', { config: { securityHeaders: 'api' } }, async (_request, reply) => reply.code(204).send())
  app.get('/declared-api-html', { config: { securityHeaders: 'api' } }, async (_request, reply) => reply.type('text/html').send(PAGE))
  app.get('/declared-api-svg', { config: { securityHeaders: 'api' } }, async (_request, reply) => reply.type('image/svg+xml').send('<svg/>'))
  app.get('/declared-html-json', { config: { securityHeaders: 'html' } }, async () => ({ a: 1 }))
  const jsonOnly: FastifySchema = { response: { 200: { content: { 'application/json': { schema: { type: 'object' } } } }, 204: { content: { 'application/json': { schema: {} } } } } }
  app.get('/schema-json', { schema: jsonOnly }, async (_request, reply) => reply.code(204).send())
  app.get('/schema-html', {
    schema: { response: { 200: { content: { 'text/html': { schema: { type: 'string' } } } } } }
  }, async () => ({ a: 1 }))
  const plain: FastifySchema = { response: { 200: { type: 'object', properties: { a: { type: 'number' } } } } }
  app.get('/schema-plain', { schema: plain }, async (_request, reply) => reply.code(204).send())
  app.get('/auto-empty', async (_request, reply) => reply.code(204).send())
  app.get('/auto-redirect', async (_request, reply) => reply.redirect('/'))

  const cases: Array<[string, Record<string, string>, string]> = [
    ['/declared-api-text', API_SET, 'declared api: text/plain is an inert type'],
    ['/declared-api-empty', API_SET, 'declared api: no Content-Type'],
    ['/declared-api-html', FULL_SET, 'declared api, but the answer is HTML: full set'],
    ['/declared-api-svg', FULL_SET, 'declared api, but SVG runs script: full set'],
    ['/declared-html-json', FULL_SET, 'declared html: full set even for JSON'],
    ['/schema-json', API_SET, 'a response schema with JSON content only: api'],
    ['/schema-html', FULL_SET, 'a response schema with HTML content: html'],
    ['/schema-plain', FULL_SET, 'a schema without content types says nothing: auto, and no Content-Type gets the full set'],
    ['/auto-empty', FULL_SET, 'auto: no Content-Type gets the full set'],
    ['/auto-redirect', FULL_SET, 'auto: a redirect without body gets the full set']
  ]
  for (const [path, expected, what] of cases) {
    t.strictSame(securityHeadersOf((await app.inject(path)).headers), expected, `${path}: ${what}`)
  }
  await app.close()

  const bad = Fastify()
  await bad.register(securityHeaders)
  t.throws(() => bad.get('/', { config: { securityHeaders: 'json' as never } }, async () => 'x'),
    /config\.securityHeaders: must be auto, html, api \(got "json"\)/)
})

t.test('what the route set itself wins: its Cache-Control, its CSP, a header set on the raw response', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders)
  app.get('/cached', async (_request, reply) => reply.header('Cache-Control', 'public, max-age=60').send({ a: 1 }))
  app.get('/own-csp', async (_request, reply) => reply.header('content-security-policy', "default-src 'none'").type('text/html').send(PAGE))
  app.get('/raw-frame', async (_request, reply) => {
    reply.raw.setHeader('X-Frame-Options', 'SAMEORIGIN')
    return { a: 1 }
  })
  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/early') reply.header('referrer-policy', 'no-referrer')
  })
  app.get('/early', async (_request, reply) => reply.type('text/html').send(PAGE))

  const cached = await app.inject('/cached')
  t.equal(cached.headers['cache-control'], 'public, max-age=60', 'the API set does not force no-store over the route\'s own Cache-Control')
  t.equal(cached.headers['x-frame-options'], 'DENY', 'the rest of the API set is there')
  const ownCsp = await app.inject('/own-csp')
  t.equal(ownCsp.headers['content-security-policy'], "default-src 'none'")
  t.equal(ownCsp.headers['x-frame-options'], 'SAMEORIGIN')
  t.equal((await app.inject('/raw-frame')).headers['x-frame-options'], 'SAMEORIGIN', 'a header on the raw response counts as set')
  t.equal((await app.inject('/early')).headers['referrer-policy'], 'no-referrer', 'a header set by an onRequest hook is kept too')
  await app.close()
})

t.test('answers that leave early get their set: a hook answering 401, a custom 404 page, a thrown error', async (t) => {
  const app = Fastify()
  await app.register(securityHeaders)
  app.get('/guarded', { onRequest: async (_request, reply) => reply.code(401).send({ error: 'unauthorized' }) }, async () => 'never')
  app.setNotFoundHandler(async (_request, reply) => reply.code(404).type('text/html').send('<!doctype html><p>not here'))
  app.get('/throws', async () => { throw new Error('x') })
  const guarded = await app.inject('/guarded')
  t.equal(guarded.statusCode, 401)
  t.strictSame(securityHeadersOf(guarded.headers), API_SET)
  const missing = await app.inject('/nope')
  t.equal(missing.statusCode, 404)
  t.strictSame(securityHeadersOf(missing.headers), FULL_SET, 'an HTML 404 page gets the full set')
  t.strictSame(securityHeadersOf((await app.inject('/throws')).headers), API_SET, 'Fastify\'s JSON 500')
  await app.close()
})

t.test('the API set follows the options: framing and sniffing turned off stay off, an explicit frame-ancestors is kept', async (t) => {
  const cases: Array<[SecurityHeadersOptions, Record<string, string>]> = [
    [{ xFrameOptions: false, xContentTypeOptions: false }, { 'cache-control': 'no-store', 'content-security-policy': "frame-ancestors 'none'" }],
    [{ frameguard: { action: 'sameorigin' }, contentSecurityPolicy: { directives: { frameAncestors: ["'self'", 'https://partner.example'] } } },
      { ...API_SET, 'x-frame-options': 'SAMEORIGIN', 'content-security-policy': "frame-ancestors 'self' https://partner.example" }],
    [{ contentSecurityPolicy: false }, { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY' }]
  ]
  for (const [options, expected] of cases) {
    const app = Fastify()
    await app.register(securityHeaders, options)
    app.get('/', async () => ({ a: 1 }))
    t.strictSame(securityHeadersOf((await app.inject('/')).headers), expected, JSON.stringify(options))
    await app.close()
  }
})

/** Types browsers render as documents that can run script. */
const DOCUMENT_TYPES = new Set(['text/html', 'application/xhtml+xml', 'image/svg+xml', 'text/xml', 'application/xml', 'text/xsl', 'multipart/x-mixed-replace'])

/** The specification of an `auto` API answer, as a regular expression: JSON and +json types, lower case. */
const API_TYPE = /^application\/(?:json|[a-z0-9!#$&^_.+-]+\+json)[ \t]*(?:;.*)?$/s

t.test('the Content-Type check equals its specification, and HTML never gets the short set (fast-check)', async (t) => {
  const piece = fc.constantFrom('application/', 'text/', 'image/', 'multipart/', 'json', '+json', 'html', 'xhtml+xml', 'svg+xml', 'xml', '+xml', 'plain', 'jsonp', 'csv', 'octet-stream', 'event-stream',
    ';', ' ', '\t', ',', 'charset=utf-8', 'JSON', 'Application/', 'vnd.api', 'problem', '-', '.', '/', '"', 'x')
  const contentType = fc.oneof(
    fc.array(piece, { maxLength: 8 }).map((parts) => parts.join('')),
    fc.string({ maxLength: 40 }),
    fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/problem+json', 'application/jsonp',
      'application/json, text/html', 'text/html', 'text/html; charset=utf-8', 'Application/JSON', 'application/+json', 'application/x-json')
  )
  fc.assert(fc.property(contentType, (type) => {
    const api = isApiAnswer(type, false)
    if (api !== API_TYPE.test(type)) throw new Error(`isApiAnswer(${JSON.stringify(type)}) = ${api}, the specification says ${!api}`)
    // A type browsers render as a document (or a header listing two types) never gets the short set.
    const essence = (type.split(';')[0] ?? '').trim().toLowerCase()
    const document = DOCUMENT_TYPES.has(essence) || essence.endsWith('+xml') || essence.includes(',')
    if (document && (api || isApiAnswer(type, true))) throw new Error(`${JSON.stringify(type)} would get the short set`)
  }), { numRuns: 5000 })
  t.notOk(isApiAnswer(undefined, false), 'no Content-Type: full set')
  t.ok(isApiAnswer(undefined, true), 'no Content-Type on a declared API route: short set')
  t.notOk(isApiAnswer(['application/json'], true), 'a Content-Type given as a list: full set')

  // The remembering form addHeaders uses: the same answer as isApiAnswer for any sequence of calls,
  // types repeated, alternating between the two kinds, and not strings among them.
  const call = fc.record({
    type: fc.oneof(contentType, fc.constantFrom(undefined, null, 7, ['application/json'])),
    declared: fc.boolean()
  })
  fc.assert(fc.property(fc.array(call, { maxLength: 30 }), fc.array(fc.nat(29), { maxLength: 30 }), (calls, repeats) => {
    const remembering = rememberingApiAnswer()
    const sequence = [...calls, ...repeats.map((i) => calls[i]).filter((c) => c !== undefined)]
    return sequence.every(({ type, declared }) => remembering(type, declared) === isApiAnswer(type, declared))
  }), { numRuns: 2000 })
  t.pass('2000 random sequences: rememberingApiAnswer answers as isApiAnswer')
})
