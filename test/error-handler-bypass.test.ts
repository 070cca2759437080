/**
 * The production error handler has no way around it: an error thrown while the error answer itself
 * is sent (an onSend hook that fails again, as a session store write does while Redis is down) used
 * to reach Fastify's default handler, which sent that error's own message.
 */
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'

const KEY = Buffer.from('851885c6e743f32b8df159ded635bfbc44bcac74cc06eb837fbc3bd33c8ce13b', 'hex').toString('base64')
const SECRET = /10\.9\.8\.7|NOREPLICAS|ETIMEDOUT|redis|connect/i

async function start (t: { teardown (fn: () => unknown): void }, failOnSend: (status: number) => boolean) {
  let onResponse = 0
  const s = await startApp({
    production: true,
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['127.0.0.1'] },
    allowedHosts: ['app.test'],
    secureSession: { keys: [KEY] }
  }, (app) => {
    app.addHook('onSend', async (_request, reply) => {
      if (failOnSend(reply.statusCode)) throw new Error('NOREPLICAS Not enough good replicas to write; redis 10.9.8.7:6379 state=connect ETIMEDOUT')
    })
    app.addHook('onResponse', async () => { onResponse++ })
    app.get('/boom', async () => { throw new Error('connect ETIMEDOUT 10.9.8.7:6379') })
    app.get('/ok', async () => 'fine')
    app.post('/login', async (_request, reply) => reply.code(303).header('location', '/').send())
  })
  t.teardown(() => s.close())
  return { s, responses: () => onResponse }
}

const headers = { host: 'app.test', 'x-forwarded-proto': 'https' }

t.test('an onSend hook that throws again on the error answer: still the generic answer', async (t) => {
  const { s, responses } = await start(t, (status) => status >= 400)
  const res = await request(`http://127.0.0.1:${s.port}/boom`, { headers })
  t.equal(res.status, 500)
  t.notMatch(res.body, SECRET, 'no internal message in the body')
  const body = JSON.parse(res.body) as { message: string, requestId: string }
  t.equal(body.message, 'Internal Server Error')
  t.ok(body.requestId, 'the request id to quote')
  t.match(String(res.headers['content-security-policy']), /frame-ancestors/, 'the security headers set before the failure are kept')
  t.equal(res.headers['strict-transport-security'], 'max-age=31536000')
  const logged = await s.logs.waitFor((line) => line.requestId === body.requestId && line.level === 50)
  t.match(String((logged.err as { message: string }).message), /ETIMEDOUT 10\.9\.8\.7/, 'the log has the real error')
  t.ok(responses() >= 1, 'onResponse hooks still run (logging, metrics)')
})

t.test('a store write that fails on every answer (Redis down): POST /login answers without naming Redis', async (t) => {
  const { s } = await start(t, () => true)
  const res = await request(`http://127.0.0.1:${s.port}/login`, { method: 'POST', headers })
  t.equal(res.status, 500)
  t.notMatch(res.body, SECRET)
  t.equal(JSON.parse(res.body).message, 'Internal Server Error')
  t.notOk(res.headers['set-cookie'], 'no cookie on an error answer')
  const ok = await request(`http://127.0.0.1:${s.port}/boom`, { headers })
  t.notMatch(ok.body, SECRET)
})

t.test('a 503 from the store error itself keeps its status, not its text', async (t) => {
  const s = await startApp({
    production: true,
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['127.0.0.1'] },
    allowedHosts: ['app.test'],
    secureSession: { keys: [KEY] }
  }, (app) => {
    app.addHook('onSend', async (_request, reply) => {
      if (reply.statusCode === 200) {
        const error = new Error('Redis at 10.9.8.7:6379 is in state connect') as Error & { statusCode: number }
        error.statusCode = 503
        throw error
      }
      if (reply.statusCode >= 500) throw new Error('NOREPLICAS 10.9.8.7')
    })
    app.get('/', async () => 'hello')
  })
  t.teardown(() => s.close())
  const res = await request(`http://127.0.0.1:${s.port}/`, { headers })
  t.equal(res.status, 503)
  t.notMatch(res.body, SECRET)
  t.equal(JSON.parse(res.body).error, 'Service Unavailable')
})

t.test('error headers, headers Node refuses, and an answer already started', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { errorHandler } = await import('../index.ts')
  const { Readable } = await import('node:stream')
  const app = Fastify()
  await app.register(errorHandler)
  app.get('/limited', async () => {
    const error = new Error('slow down') as Error & { statusCode: number, headers: Record<string, unknown> }
    error.statusCode = 429
    error.headers = { 'Retry-After': '30', 'set-cookie': 'planted=1', 'x-object': { no: 'thanks' } }
    throw error
  })
  app.get('/bad-header', async (_request, reply) => {
    reply.header('x-bad', 'a\u0000b')
    throw new Error('secret after a bad header')
  })
  app.get('/midway', async (_request, reply) => {
    let sent = false
    const body = new Readable({
      read () {
        if (!sent) { sent = true; this.push('partial'); return }
        this.destroy(new Error('disk 10.9.8.7 failed midway'))
      }
    })
    return reply.type('text/plain').send(body)
  })
  const limited = await app.inject('/limited')
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['retry-after'], '30', 'an error\'s own headers are kept for client errors')
  t.notOk(limited.headers['set-cookie'], 'but never a cookie')
  t.notOk(limited.headers['x-object'], 'nor a value that is not a string or number')
  t.equal(limited.json().message, 'slow down')

  const bad = await app.inject('/bad-header')
  t.equal(bad.statusCode, 500, 'a header Node refuses does not stop the answer')
  t.notMatch(bad.body, /secret/)
  t.equal(bad.json().message, 'Internal Server Error')

  const midway = await app.inject('/midway').catch((error: Error) => error)
  const text = midway instanceof Error ? midway.message : midway.body
  t.notMatch(text, /10\.9\.8\.7/, 'an answer that had started is cut, not finished with the message')
  await app.close()
})
