import Fastify from 'fastify'
import t from 'tap'
import { errorHandler } from '../index.ts'
import { startApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'

// A fixed random key: production refuses sequences and other patterns.
const KEY = Buffer.from('f229428d6cdb2f5f3c70c2e0ceba91d756cd3e9945f08cee75be1fae4aa72a7c', 'hex').toString('base64')

t.test('production: a 500 hides the message; the log has it with the request id', async (t) => {
  const s = await startApp({
    production: true,
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['127.0.0.1'] },
    allowedHosts: ['app.test'],
    secureSession: { keys: [KEY] }
  }, (app) => {
    app.get('/boom', async () => { throw new Error('connect ECONNREFUSED 10.1.2.3:5432 user=admin') })
    app.post('/validate', { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } }, async () => 'ok')
    app.get('/teapot', async (_request, reply) => reply.code(418).send(new Error('short and stout')))
  })
  t.teardown(() => s.close())
  const base = `http://127.0.0.1:${s.port}`
  const headers = { host: 'app.test', 'x-forwarded-proto': 'https' }

  const res = await request(`${base}/boom`, { headers })
  t.equal(res.status, 500)
  const body = JSON.parse(res.body) as { message: string, requestId: string }
  t.equal(body.message, 'Internal Server Error')
  t.notMatch(res.body, /ECONNREFUSED|admin|10\.1\.2\.3/, 'nothing internal reaches the client')
  t.ok(body.requestId, 'the client gets a request id to quote')
  t.match(String(res.headers['content-security-policy']), /frame-ancestors/, 'security headers on the 500 too')
  t.equal(res.headers['strict-transport-security'], 'max-age=31536000', 'and HSTS (via the trusted proxy)')
  const logged = await s.logs.waitFor((line) => line.requestId === body.requestId && line.level === 50)
  t.match(String((logged.err as { message: string }).message), /ECONNREFUSED 10\.1\.2\.3/, 'the log has the real error under that id')

  const invalid = await request(`${base}/validate`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' })
  t.equal(invalid.status, 400)
  t.match(invalid.body, /must have required property 'name'/, '4xx messages reach the client')

  const teapot = await request(`${base}/teapot`, { headers })
  t.equal(teapot.status, 418, 'an Error sent on a 4xx reply keeps the status')
  t.notMatch(teapot.body, /short and stout/, 'but not its message: only an error with its own 4xx status is the client\'s')
  t.same(JSON.parse(teapot.body).message, 'I\'m a Teapot', 'the reason phrase instead')
})

t.test('production: an internal error on a 4xx reply (a hook, the serializer, a call after reply.code) is redacted; a cacheable route\'s error is not cached', async (t) => {
  const app = Fastify()
  await app.register(errorHandler)
  // An app's onSend hook that fails on the 401 of a failed login: the audit database is down.
  app.register(async (child) => {
    child.addHook('onSend', async () => { throw new Error('audit db 10.9.8.7:5432 password authentication failed for user "svc_audit"') })
    child.post('/login', async (_request, reply) => reply.code(401).send({ error: 'bad password' }))
  })
  app.get('/item', async (_request, reply) => {
    reply.code(404)
    throw new Error('connect ECONNREFUSED 10.1.2.3:6379 (cache-primary)')
  })
  app.get('/bigint', async (_request, reply) => reply.code(400).send({ n: 10n }))
  app.get('/own', async () => { throw Object.assign(new Error('no item 7'), { statusCode: 404 }) })
  app.get('/public', async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=86400').header('expires', 'Thu, 01 Jan 2099 00:00:00 GMT')
    throw new Error('odd Accept-Language')
  })
  for (const [method, url, status, secret] of [['POST', '/login', 401, /10\.9\.8\.7|svc_audit|password/], ['GET', '/item', 404, /ECONNREFUSED|6379|cache-primary/], ['GET', '/bigint', 400, /BigInt/]] as const) {
    const answer = await app.inject({ method, url })
    t.equal(answer.statusCode, status, `${url}: the status stays ${status}`)
    t.notMatch(answer.body, secret, `${url}: the internal message does not reach the client`)
    t.ok(answer.json().requestId, `${url}: a request id to quote instead`)
  }
  const own = await app.inject('/own')
  t.same([own.statusCode, own.json().message], [404, 'no item 7'], 'an error with its own 4xx status is the client\'s: its message is shown')
  const cached = await app.inject('/public')
  t.equal(cached.statusCode, 500)
  t.equal(cached.headers['cache-control'], 'no-store', 'an error answer is never cacheable, whatever the route had set')
  t.equal(cached.headers.expires, undefined)
})

t.test('development: Fastify\'s own handler (the message helps the developer)', async (t) => {
  const s = await startApp({}, (app) => { app.get('/boom', async () => { throw new Error('details for the developer') }) })
  t.teardown(() => s.close())
  const res = await request(`${s.url}/boom`, { ca: s.cert as string })
  t.equal(res.status, 500)
  t.match(res.body, /details for the developer/)
})

t.test('configurable message; client errors can be hidden too', async (t) => {
  const app = Fastify()
  await app.register(errorHandler, { message: 'Something went wrong', exposeClientErrors: false })
  app.get('/boom', async () => { throw new Error('secret') })
  app.get('/bad', async (_request, reply) => reply.code(400).send(new Error('secret 4xx')))
  app.post('/validate', { schema: { body: { type: 'object', required: ['name'] } } }, async () => 'ok')
  const boom = await app.inject('/boom')
  t.equal(boom.json().message, 'Something went wrong')
  const bad = await app.inject('/bad')
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().message, 'Bad Request', 'a redacted 4xx carries its reason phrase; `message` is the 5xx answers\'')
  t.notMatch(bad.body, /secret/)
  const invalid = await app.inject({ method: 'POST', url: '/validate', payload: {} })
  t.same([invalid.statusCode, invalid.json().message], [400, 'Bad Request'], 'validation details hidden with exposeClientErrors: false')
  const weird = Fastify()
  await weird.register(errorHandler)
  weird.get('/', async () => { const e = new Error('x') as Error & { statusCode: number }; e.statusCode = 302; throw e })
  t.equal((await weird.inject('/')).statusCode, 500, 'a non-error status on an error becomes 500')
})
