import Fastify from 'fastify'
import t from 'tap'
import { hsts, hstsSchema } from '../index.ts'
import { hstsHeaderValue, hstsWarnings } from '../schemas/hsts.ts'
import { startApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'

const STS = 'strict-transport-security'

t.test('over TLS: sent for a real host name, not for localhost unless asked', async (t) => {
  const s = await startApp({ allowedHosts: ['app.test', 'localhost'], hsts: { includeSubDomains: true } }, (app) => {
    app.get('/', async () => 'hi')
    app.get('/no-hsts', { config: { hsts: false } }, async () => 'opted out')
  })
  t.teardown(() => s.close())
  const ca = s.cert as string

  const named = await request(`https://127.0.0.1:${s.port}/`, { ca, servername: 'app.test', headers: { host: `app.test:${s.port}` } })
  t.equal(named.tls?.protocol, 'TLSv1.3', 'a real TLS connection')
  t.equal(named.headers[STS], 'max-age=31536000; includeSubDomains')

  const local = await request(`${s.url}/`, { ca })
  t.equal(local.status, 200)
  t.notOk(local.headers[STS], 'no HSTS for localhost by default')
  const loopbackIp = await request(`https://127.0.0.1:${s.port}/`, { ca })
  t.notOk(loopbackIp.headers[STS], 'nor for 127.0.0.1')

  const optedOut = await request(`https://127.0.0.1:${s.port}/no-hsts`, { ca, servername: 'app.test', headers: { host: 'app.test' } })
  t.equal(optedOut.body, 'opted out')
  t.notOk(optedOut.headers[STS], 'a route can opt out with config.hsts = false')

  const notFound = await request(`https://127.0.0.1:${s.port}/missing`, { ca, headers: { host: 'app.test' } })
  t.equal(notFound.status, 404)
  t.equal(notFound.headers[STS], 'max-age=31536000; includeSubDomains', 'also on 404')

  const redirect = await request(`${s.redirectUrl as string}/`, { headers: { host: 'app.test' } })
  t.equal(redirect.status, 307)
  t.notOk(redirect.headers[STS], 'never on the HTTP redirect listener')
  const probe = await request(`${s.redirectUrl as string}/healthz`, { headers: { host: 'app.test' } })
  t.notOk(probe.headers[STS], 'nor on exempt paths answered over HTTP')
})

t.test('hsts.localhost sends it to localhost too', async (t) => {
  const s = await startApp({ hsts: { localhost: true, maxAge: 600 } }, (app) => { app.get('/', async () => 'hi') })
  t.teardown(() => s.close())
  const res = await request(`${s.url}/`, { ca: s.cert as string })
  t.equal(res.headers[STS], 'max-age=600')
})

t.test('plain HTTP never gets it', async (t) => {
  const s = await startApp({ tls: { mode: 'off' }, hsts: { localhost: true } }, (app) => { app.get('/', async () => 'plain') })
  t.teardown(() => s.close())
  const res = await request(`${s.url}/`)
  t.equal(res.body, 'plain')
  t.notOk(res.tls, 'the request went over plain HTTP')
  t.notOk(res.headers[STS])
})

t.test('behind a trusted proxy: only when the proxy says https, and only from the proxy', async (t) => {
  const s = await startApp({
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['127.0.0.1'] },
    allowedHosts: ['app.test'],
    hsts: { maxAge: 31536000 }
  }, (app) => { app.get('/', async () => 'behind proxy') })
  t.teardown(() => s.close())
  const base = `http://127.0.0.1:${s.port}`

  const viaProxy = await request(`${base}/`, { localAddress: '127.0.0.1', headers: { host: 'app.test', 'x-forwarded-proto': 'https' } })
  t.equal(viaProxy.status, 200)
  t.equal(viaProxy.headers[STS], 'max-age=31536000', 'present when the trusted proxy says https')

  const spoofed = await request(`${base}/`, { localAddress: '127.0.0.2', headers: { host: 'app.test', 'x-forwarded-proto': 'https' } })
  t.equal(spoofed.status, 307, 'an untrusted peer claiming https is redirected like plain HTTP')
  t.notOk(spoofed.headers[STS], 'and gets no HSTS')
  const event = await s.logs.waitFor((line) => line.securityEvent === 'proxy.untrusted-forwarded')
  t.equal(event.remoteAddress, '127.0.0.2')

  const plain = await request(`${base}/`, { localAddress: '127.0.0.1', headers: { host: 'app.test', 'x-forwarded-proto': 'http' } })
  t.equal(plain.status, 307)
  t.notOk(plain.headers[STS], 'none when the proxy says http')
})

t.test('header value and warnings are computed from the options', async (t) => {
  t.equal(hstsHeaderValue({ maxAge: 63072000, includeSubDomains: true, preload: true }), 'max-age=63072000; includeSubDomains; preload')
  t.equal(hstsHeaderValue({ maxAge: 0, includeSubDomains: false, preload: false }), 'max-age=0')
  const long = hstsWarnings(hstsSchema.parse({ maxAge: 3 * 31536000 }))
  t.match(long[0], /over two years/)
  const short = hstsWarnings(hstsSchema.parse({ maxAge: 60, production: true }))
  t.match(short[0], /under 300 seconds/)
  const off = hstsWarnings(hstsSchema.parse({ maxAge: 0, production: true }))
  t.match(off[0], /HSTS is off/)
  t.same(hstsWarnings(hstsSchema.parse({})), [])
})

t.test('registered alone, bad options fail ready() naming the option', async (t) => {
  const app = Fastify()
  app.register(hsts, { preload: true, maxAge: 300 })
  await t.rejects(Promise.resolve(app.ready()), /hsts configuration[\s\S]*preload: preload requires HSTS_MAX_AGE >= 31536000 \(got 300\)[\s\S]*preload requires HSTS_INCLUDE_SUBDOMAINS=true/)
})

t.test('registered alone, warnings reach the log', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  await app.register(hsts, { maxAge: 5 * 31536000 })
  await app.ready()
  t.match(lines.join(''), /over two years/)
  await app.close()
})
