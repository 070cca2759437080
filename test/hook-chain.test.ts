/**
 * The aggregate runs the synchronous request work of proxy trust, host authorization, HSTS, the
 * security headers and the cookie session in one onRequest and one onSend hook (plugins/hook-chain.ts);
 * each plugin registered on its own keeps a hook of its own. Checked: the hooks each route runs, the
 * chain's semantics (order, an answer or an error ends it), and that the same app answers the same,
 * header for header, whichever way it is assembled, over real TLS sockets.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import secureHttps, { hostAuthorization, hsts, memorySessionStore, proxyTrust, resolveConfig, secureSession, securityHeaders, serverOptions } from '../index.ts'
import { addChainHooks, addRequestStep, addSendStep, REPLIED, withChain } from '../plugins/hook-chain.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { cookieHeader, request, type Response } from './helpers/http.ts'

const KEY = randomBytes(32)

function routes (app: FastifyInstance, ran: { count: number }): void {
  app.get('/anonymous', async () => {
    ran.count++
    return { hello: 'world' }
  })
  app.get('/page', async (_request, reply) => {
    ran.count++
    return reply.type('text/html; charset=utf-8').send('<p>hi</p>')
  })
  app.get('/login', async (request) => {
    ran.count++
    request.session.set('user', 'alice')
    return { user: 'alice' }
  })
  app.get('/read', async (request) => ({ user: request.session.get('user') ?? null }))
  app.get('/unsealable', async (request) => {
    ran.count++
    // A BigInt: JSON cannot encode it.
    ;(request.session as unknown as { set (key: string, value: unknown): void }).set('n', 1n)
    return { ok: true }
  })
}

/** The onRequest and onSend hook names of GET /anonymous, as printRoutes lists them. */
function hooksOf (app: FastifyInstance): { onRequest: string[], onSend: string[] } {
  const listing = app.printRoutes({ includeHooks: true, commonPrefix: false })
  const section = listing.slice(listing.indexOf('/anonymous (GET)'))
  const list = (hook: string): string[] => {
    const match = new RegExp(`\\(${hook}\\) (\\[[^\\]]*\\])`).exec(section)
    return match === null ? [] : (JSON.parse(match[1] as string) as string[]).map((name) => name.replace(/\(\)$/, ''))
  }
  return { onRequest: list('onRequest'), onSend: list('onSend') }
}

t.test('through the aggregate: one onRequest and one onSend hook of the suite per route, in the place of the first', async (t) => {
  const config = resolveConfig({ port: 0, allowedHosts: ['app.test'], httpsRedirect: { port: 0 }, tls: { dir: tempDir('secure-https-chain-', t) }, secureSession: { keys: [KEY] } })
  const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  app.addHook('onRequest', async function appsOwnFirst () {})
  await app.register(secureHttps, config)
  routes(app, { count: 0 })
  await app.ready()
  const { onRequest, onSend } = hooksOf(app)
  t.same(onRequest.slice(0, 2), ['appsOwnFirst', 'secureHttpsRequest'], 'the app\'s earlier hook first, then the suite\'s single request hook')
  t.same(onRequest.filter((name) => ['proxyTrustCheck', 'hostAuthorization', 'hstsHeader', 'crossSiteCheck'].includes(name)), [], 'no hook of its own for proxy trust, host authorization, HSTS or the cross-site check')
  t.equal(onRequest.at(-1), 'onRequestCookie', 'the session\'s view still comes after @fastify/secure-session opened the cookie')
  t.equal(onSend[0], 'secureHttpsSend', 'the suite\'s single send hook runs first, before @fastify/secure-session\'s')
  t.same(onSend.filter((name) => ['securityHeaders', 'onSendCookie'].includes(name)), [], 'no hook of its own for the headers or the cookie')
})

t.test('@fastify/cors registered before the suite: a warning that its preflights skip the suite\'s checks', async (t) => {
  const config = resolveConfig({ tls: false, secureSession: false, httpsRedirect: false })
  const lines: Array<{ level: number, msg: string }> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line) as { level: number, msg: string }) } } } }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  // The name is what matters: hasPlugin('@fastify/cors'), as @fastify/cors registers under it.
  await app.register(fp(async () => {}, { name: '@fastify/cors' }))
  await app.register(secureHttps, config)
  await app.ready()
  t.ok(lines.some((line) => line.level === 40 && /@fastify\/cors is registered before fastify-secure-https.*Register secureHttps first/.test(line.msg)), 'warned, with the fix')
  const after = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line) as { level: number, msg: string }) } } } }) as unknown as FastifyInstance
  t.teardown(() => after.close())
  lines.length = 0
  await after.register(secureHttps, config)
  await after.register(fp(async () => {}, { name: '@fastify/cors' }))
  await after.ready()
  t.notOk(lines.some((line) => /@fastify\/cors/.test(line.msg)), 'registered after it: no warning')
})

t.test('the aggregate adds its send hook only when a part has a send step: cookie sessions or the headers', async (t) => {
  async function sendHooks (secureSessionConfig: object): Promise<string[]> {
    const config = resolveConfig({ port: 0, allowedHosts: ['app.test'], httpsRedirect: false, securityHeaders: false, tls: { dir: tempDir('secure-https-chain-', t) }, secureSession: { keys: [KEY], ...secureSessionConfig } })
    const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
    t.teardown(() => app.close())
    await app.register(secureHttps, config)
    routes(app, { count: 0 })
    await app.ready()
    return hooksOf(app).onSend
  }
  t.equal((await sendHooks({})).includes('secureHttpsSend'), true, 'cookie sessions, headers off: the cookie is written in the send hook')
  t.equal((await sendHooks({ store: 'cookie' })).includes('secureHttpsSend'), true, 'store: \'cookie\' is the same')
  const withStore = await sendHooks({ store: memorySessionStore() })
  t.equal(withStore.includes('secureHttpsSend'), false, 'a session store (its own asynchronous hook) and no headers: no empty send hook')
  t.equal(withStore.includes('onSendCookie'), false, 'and no cookie step anywhere')
})

t.test('each plugin registered on its own keeps its own hook, under its own name', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(proxyTrust, { trust: ['loopback'] })
  await app.register(hostAuthorization, { allowedHosts: ['app.test'] })
  await app.register(hsts, {})
  await app.register(securityHeaders, {})
  await app.register(secureSession, { keys: [KEY] })
  routes(app, { count: 0 })
  await app.ready()
  const { onRequest, onSend } = hooksOf(app)
  t.same(onRequest.slice(0, 3), ['proxyTrustCheck', 'hostAuthorization', 'hstsHeader'])
  t.same(onSend.slice(0, 2), ['securityHeaders', 'onSendCookie'])
  t.notOk(onRequest.includes('secureHttpsRequest') || onSend.includes('secureHttpsSend'), 'no chain without the aggregate')
})

t.test('the chain: steps run in order; an answer ends it without done, an error fails the request, a send step\'s error fails the response', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const chain = addChainHooks(app, { request: true, send: true })
  const seen: string[] = []
  const steps = { answer: false, fail: false, failSend: false }
  addRequestStep(app, withChain({}, chain), 'first', (request) => { seen.push(`first ${request.url}`); return undefined })
  addRequestStep(app, withChain({}, chain), 'answers', (_request, reply) => {
    if (!steps.answer) return undefined
    reply.code(421).send('answered early')
    return REPLIED
  })
  addRequestStep(app, withChain({}, chain), 'fails', () => steps.fail ? new Error('refused by a step') : undefined)
  addRequestStep(app, withChain({}, chain), 'last', (request) => { seen.push(`last ${request.url}`); return undefined })
  addSendStep(app, withChain({}, chain), 'header', (_request, reply) => { reply.header('x-step', 'sent'); return undefined })
  addSendStep(app, withChain({}, chain), 'failsSend', () => steps.failSend ? new Error('refused at send') : undefined)
  app.get('/', async () => 'route')
  t.equal(chain.request?.length, 4, 'the steps went into the chain')
  t.equal(chain.send?.length, 2)

  const plain = await app.inject('/')
  t.equal(plain.body, 'route')
  t.equal(plain.headers['x-step'], 'sent')
  t.same(seen, ['first /', 'last /'], 'in the order they were added')

  seen.length = 0
  steps.answer = true
  const early = await app.inject('/')
  t.equal(early.statusCode, 421)
  t.equal(early.body, 'answered early')
  t.equal(early.headers['x-step'], 'sent', 'an early answer still goes through the send steps')
  t.same(seen, ['first /'], 'nothing after the step that answered')

  seen.length = 0
  steps.answer = false
  steps.fail = true
  const failed = await app.inject('/')
  t.equal(failed.statusCode, 500)
  t.match(failed.json(), { message: 'refused by a step' })
  t.same(seen, ['first /'], 'nothing after the step that failed')

  steps.fail = false
  steps.failSend = true
  const failedSend = await app.inject('/')
  t.equal(failedSend.statusCode, 500)
  t.not(failedSend.body, 'route', 'the route\'s answer is not sent')
})

t.test('a step for a kind the chain has no hook of gets a hook of its own: never left unrun', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  // As the aggregate would with no request-side part configured, then handed a step anyway.
  const chain = addChainHooks(app, { request: false, send: true })
  t.equal(chain.request, null, 'no request hook, so no request steps to hold')
  addRequestStep(app, withChain({}, chain), 'strayRequest', (_request, reply) => { reply.header('x-request-step', 'ran'); return undefined })
  addSendStep(app, withChain({}, chain), 'chained', (_request, reply) => { reply.header('x-send-step', 'ran'); return undefined })
  app.get('/anonymous', async () => 'route')
  await app.ready()
  const { onRequest, onSend } = hooksOf(app)
  t.same(onRequest, ['strayRequest'], 'the request step runs in a hook of its own')
  t.same(onSend, ['secureHttpsSend'], 'the send step in the chain\'s hook')
  const response = await app.inject('/anonymous')
  t.equal(response.headers['x-request-step'], 'ran')
  t.equal(response.headers['x-send-step'], 'ran')
})

t.test('registered alone, a step\'s hook behaves the same (answer, error, send error)', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  addRequestStep(app, {}, 'answers', (request, reply) => {
    if (request.url !== '/early') return undefined
    reply.code(421).send('answered early')
    return REPLIED
  })
  addRequestStep(app, undefined, 'fails', (request) => request.url === '/fail' ? new Error('refused by a step') : undefined)
  addSendStep(app, null, 'failsSend', (request) => request.url === '/fail-send' ? new Error('refused at send') : undefined)
  let ran = 0
  app.get('/*', async () => { ran++; return 'route' })
  t.equal((await app.inject('/')).body, 'route')
  t.equal((await app.inject('/early')).statusCode, 421)
  t.equal((await app.inject('/fail')).statusCode, 500)
  t.equal((await app.inject('/fail-send')).statusCode, 500)
  t.equal(ran, 2, 'the route ran for / and /fail-send only')
})

/** Headers that differ between two answers of the same server by nature (date, lengths are compared). */
function comparable (response: Response): Record<string, unknown> {
  const { date: _date, 'set-cookie': cookie, ...rest } = response.headers
  return { status: response.status, body: response.body, cookie: cookie === undefined ? null : cookie.map((line) => line.replace(/=[^;]*;/, '=<sealed>;')), ...rest }
}

t.test('over TLS: the same app answers the same, header for header, through the aggregate or from the plugins one by one', async (t) => {
  const viaAggregate = { count: 0 }
  const aggregate = await startApp({ allowedHosts: ['app.test'], secureSession: { keys: [KEY] }, crossSite: false, errorHandler: false }, (app) => routes(app, viaAggregate))
  t.teardown(() => aggregate.close())
  const viaPlugins = { count: 0 }
  // The same parts, registered one by one on a server with the aggregate's TLS certificate.
  const separate = await startApp({ allowedHosts: ['app.test'], proxyTrust: false, hostAuthorization: false, hsts: false, securityHeaders: false, secureSession: false, crossSite: false, errorHandler: false }, async (app) => {
    await app.register(proxyTrust, { trust: [] })
    await app.register(hostAuthorization, { allowedHosts: ['app.test'] })
    await app.register(hsts, {})
    await app.register(securityHeaders, {})
    await app.register(secureSession, { keys: [KEY] })
    routes(app, viaPlugins)
  })
  t.teardown(() => separate.close())
  t.equal(hooksOf(aggregate.app).onRequest.includes('secureHttpsRequest'), true, 'the aggregate runs the chain')
  t.equal(hooksOf(separate.app).onRequest.includes('hstsHeader'), true, 'the other app runs the plugins\' own hooks')

  const ask = async (s: typeof aggregate, path: string, headers: Record<string, string> = {}): Promise<Response> =>
    request(`https://127.0.0.1:${s.port}${path}`, { ca: s.cert as string, servername: 'app.test', headers: { host: 'app.test', ...headers } })

  for (const path of ['/anonymous', '/page', '/login', '/missing']) {
    const a = await ask(aggregate, path)
    const b = await ask(separate, path)
    t.equal(a.tls?.protocol, 'TLSv1.3', `${path}: a real TLS connection`)
    t.same(comparable(a), comparable(b), `${path}: the same status, body and headers`)
  }
  const api = await ask(aggregate, '/anonymous')
  t.equal(api.headers['strict-transport-security'], 'max-age=31536000', 'HSTS from the chain')
  t.equal(api.headers['x-content-type-options'], 'nosniff', 'the security headers from the chain')
  const login = await ask(aggregate, '/login')
  t.match(login.headers['set-cookie']?.[0], /^__Host-session=[^;]+; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Lax$/, 'the session cookie from the chain')
  const read = await ask(aggregate, '/read', { cookie: cookieHeader(login) })
  t.same(JSON.parse(read.body), { user: 'alice' }, 'and it opens on the next request')

  const before = viaAggregate.count
  const unknown = await ask(aggregate, '/anonymous', { host: 'evil.test' })
  const unknownSeparate = await ask(separate, '/anonymous', { host: 'evil.test' })
  t.equal(unknown.status, unknownSeparate.status, 'an unknown host is refused the same way')
  t.equal(unknown.body, unknownSeparate.body)
  t.equal(viaAggregate.count, before, 'no route ran')
  t.notOk(unknown.headers['strict-transport-security'], 'HSTS is not reached for a refused host (it runs after host authorization)')
  t.equal(unknown.headers['x-content-type-options'], 'nosniff', 'the refusal still carries the security headers')

  const unsealable = await ask(aggregate, '/unsealable')
  const unsealableSeparate = await ask(separate, '/unsealable')
  t.equal(unsealable.status, 500, 'a session that cannot be sealed fails the response from the chain\'s send hook')
  t.equal(unsealable.status, unsealableSeparate.status)
  t.notOk(unsealable.headers['set-cookie'], 'with no cookie')
})

t.test('over plain HTTP: an error of the proxy trust step fails the request before the others run', async (t) => {
  // An instance built without serverOptions: its trustProxy contradicts TRUST_PROXY, which the
  // proxy trust step refuses (500) on the first forwarded request from that peer.
  const config = resolveConfig({ port: 0, tls: { mode: 'off' }, httpsRedirect: false, proxyTrust: { trust: 'loopback' }, secureSession: false, hsts: { localhost: true } })
  const app = Fastify({ logger: false }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(secureHttps, config)
  let ran = 0
  app.get('/', async () => { ran++; return 'route' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'route', 'no forwarding headers: the route answers')
  const unknownHost = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'evil.test' } })
  t.equal(unknownHost.status, 400, 'an unknown host alone is refused by host authorization (400)')
  // Also for a host that host authorization, the next step, would refuse: the request fails with
  // the proxy trust step's error, so the chain stopped there.
  const refused = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'evil.test', 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' } })
  t.equal(refused.status, 500, 'a forwarded request fails closed, before host authorization answers')
  t.equal(ran, 1, 'the route ran once, for the first request')
})
