/**
 * The metrics plugin over real sockets: its own listener started by listen() and closed with the
 * app, never the app's port; and each metric moved by the real event (a tampered cookie, a failed
 * and a good certificate reload, redirects, TLS handshakes), scraped as Prometheus scrapes it.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { X509Certificate } from 'node:crypto'
import { channel } from 'node:diagnostics_channel'
import { renameSync, rmSync, writeFileSync } from 'node:fs'
import { Agent } from 'node:https'
import { connect, createServer as createTcpServer } from 'node:net'
import { join } from 'node:path'
import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import t from 'tap'
import secureHttps, { channelNames, metricNames, metrics, resolveConfig, serverOptions, tls } from '../index.ts'
import { freePort, startApp, tempDir } from './helpers/app.ts'
import { createPki } from './helpers/certs.ts'
import { request } from './helpers/http.ts'
import { parseExposition, scrape, scrapeUntil } from './helpers/metrics.ts'

// A fixed random key (production refuses patterned ones).
const KEY = Buffer.from('9cc4beed88193a71c57ae6b81b987ef1f817acd39ae5bc8bf943cb2682d50e43', 'hex').toString('base64')

function refused (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'))
  })
}

/** Sends plain HTTP to a TLS port (a failed handshake); resolves when the server has closed it. */
function plainTextToTls (port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'))
    socket.on('data', () => {})
    socket.once('error', () => {})
    socket.once('close', () => resolve())
  })
}

t.test('the listener starts with listen(), not ready(), on its own port, and closes with the app', async (t) => {
  const port = await freePort()
  const config = resolveConfig({ port: 0, tls: { dir: tempDir('secure-https-metrics-', t) }, httpsRedirect: false, metrics: { port } })
  const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(secureHttps, config)
  app.get('/', async () => 'app')
  await app.ready()
  t.equal(app.secureHttpsMetrics.address(), null, 'ready() starts nothing')
  t.ok(await refused(port), 'nothing listens on METRICS_PORT before listen()')

  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = await app.secureHttpsMetrics.listening()
  t.equal(address?.port, port, 'listen() starts it on METRICS_PORT')
  t.equal(address?.address, '127.0.0.1', 'on loopback by default')
  const got = await scrape(port)
  t.equal(got.contentType, 'text/plain; version=0.0.4; charset=utf-8', 'Prometheus\' text exposition format')
  for (const name of Object.values(metricNames)) t.ok(got.types.has(name), `${name} is exported`)
  t.equal(got.types.get(metricNames.sessionStoreSeconds), 'histogram')
  t.ok(got.value('process_cpu_user_seconds_total') !== undefined, 'with prom-client\'s default process metrics')
  t.ok(got.value('nodejs_eventloop_lag_seconds') !== undefined)

  const appPort = (app.server.address() as { port: number }).port
  const onApp = await request(`https://127.0.0.1:${appPort}/metrics`, { insecure: true, headers: { host: 'localhost' } })
  t.equal(onApp.status, 404, 'the app\'s public port does not serve them')
  const other = await request(`http://127.0.0.1:${port}/`)
  t.equal(other.status, 404, 'the listener serves /metrics alone')
  t.match(other.body, /the metrics are at \/metrics/)
  const post = await request(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })
  t.equal(post.status, 405)
  t.equal(post.headers.allow, 'GET, HEAD')
  const head = await request(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body, '')
  const query = await request(`http://127.0.0.1:${port}/metrics?name[]=up`)
  t.equal(query.status, 200, 'a query string is ignored')
  t.equal(got.value(metricNames.tlsHandshakes, { result: 'success' }), 0, 'the scrape is not a TLS connection of the app')

  await app.close()
  t.equal(app.secureHttpsMetrics.address(), null)
  t.ok(await refused(port), 'closed with the app')
  for (const name of Object.values(channelNames)) t.notOk(channel(name).hasSubscribers, `${name}: no subscriber left, publishing costs nothing again`)
})

t.test('a METRICS_PORT in use is logged with its fix; the app serves without metrics', async (t) => {
  const blocker = createTcpServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const taken = (blocker.address() as { port: number }).port
  const s = await startApp({ metrics: { port: taken } }, (app) => { app.get('/', async () => 'still here') })
  t.teardown(() => s.close())
  await t.rejects(s.app.secureHttpsMetrics.listening(), {
    code: 'ERR_SECURE_HTTPS_METRICS_LISTEN',
    message: new RegExp(`the metrics listener cannot listen on 127\\.0\\.0\\.1:${taken} \\(EADDRINUSE\\); choose another METRICS_PORT`)
  })
  const line = await s.logs.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('the metrics listener cannot listen'))
  t.equal(line.level, 50, 'logged at error level')
  const answer = await request(`${s.url}/`, { ca: s.cert ?? undefined })
  t.equal(answer.body, 'still here')
})

t.test('each metric moves with its event, once per event, and handshakes once per connection', async (t) => {
  const s = await startApp({ secureSession: { keys: [KEY] }, metrics: { port: 0 } }, (app) => {
    app.get('/read', async (request) => ({ user: request.session.get('user') ?? null }))
  })
  t.teardown(() => s.close())
  const port = (await s.app.secureHttpsMetrics.listening())?.port as number
  const before = await scrape(port)
  const handshakesBefore = before.value(metricNames.tlsHandshakes, { result: 'success' }) as number
  t.equal(before.value(metricNames.securityEvents, { event: 'session.tampered' }), 0, 'every event starts at 0')

  const notAfter = new Date(new X509Certificate(s.cert as string).validTo).getTime() / 1000
  t.equal(before.value(metricNames.certificateNotAfter, { name: 'default', source: 'self-signed' }), notAfter, 'the expiry of the certificate served')

  // 65 tampered cookies on one keep-alive connection: more than the log lets through in a minute.
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: s.cert as string })
  t.teardown(() => agent.destroy())
  const ports = new Set<number | undefined>()
  for (let i = 0; i < 65; i++) {
    const response = await request(`${s.url}/read`, { agent, headers: { cookie: `__Host-session=forged${i}` } })
    t.equal(response.status, 200)
    ports.add(response.localPort)
  }
  t.equal(ports.size, 1, 'one connection carried the 65 requests')
  const after = await scrape(port)
  t.equal(after.value(metricNames.securityEvents, { event: 'session.tampered' }), 65, 'every tampered cookie is counted')
  t.equal(s.logs.events('session.tampered').length, 60, 'while the log keeps to its rate limit')
  t.equal((after.value(metricNames.tlsHandshakes, { result: 'success' }) as number) - handshakesBefore, 1, 'one handshake for 65 requests: counted per connection, not per request')

  await plainTextToTls(s.port)
  await plainTextToTls(s.port)
  const failed = await scrapeUntil(port, (got) => got.value(metricNames.tlsHandshakes, { result: 'failure' }) === 2, 'two failed handshakes')
  t.equal(failed.value(metricNames.tlsHandshakes, { result: 'failure' }), 2, 'plain HTTP to the TLS port is a failed handshake')

  const redirectUrl = s.redirectUrl as string
  // Development: temporary redirects (307) for every method; production's 301 and 308 are counted alike.
  t.equal((await request(`${redirectUrl}/page`)).status, 307)
  t.equal((await request(`${redirectUrl}/page`)).status, 307)
  t.equal((await request(`${redirectUrl}/form`, { method: 'POST' })).status, 307)
  t.equal((await request(`${redirectUrl}/page`, { headers: { host: 'evil.test' } })).status, 400)
  t.equal((await request(`${redirectUrl}/healthz`)).status, 404, 'an exempt path is no redirect')
  const redirected = await scrape(port)
  t.equal(redirected.value(metricNames.redirects, { status: '307' }), 3)
  t.equal(redirected.samples.filter((sample) => sample.name === metricNames.redirects).length, 1, 'one status seen')
  t.equal(redirected.value(metricNames.redirects, { status: '400' }), undefined, 'a refused host is no redirect')
  t.equal(redirected.value(metricNames.securityEvents, { event: 'redirect.unknown-host' }), 1, 'but a security event')
  t.equal(redirected.value(metricNames.sessionStoreSeconds + '_count'), undefined, 'cookie sessions make no store call')
})

t.test('certificate reloads: a broken file counts a failure, a good one a success and the new expiry', async (t) => {
  const pki = await createPki()
  const dir = tempDir('secure-https-metrics-files-', t)
  const first = await pki.leaf({ days: 30 })
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  writeFileSync(certFile, first.fullchain)
  writeFileSync(keyFile, first.key, { mode: 0o600 })
  const s = await startApp({ tls: { mode: 'files', certFile, keyFile }, metrics: { port: 0 } })
  t.teardown(() => s.close())
  const port = (await s.app.secureHttpsMetrics.listening())?.port as number
  const start = await scrape(port)
  const firstNotAfter = new Date(new X509Certificate(first.cert).validTo).getTime() / 1000
  t.equal(start.value(metricNames.certificateNotAfter, { name: 'default', source: 'files' }), firstNotAfter)
  t.equal(start.value(metricNames.certificateReloads, { result: 'success' }), 0, 'the first load is not a reload')

  writeFileSync(`${certFile}.tmp`, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n')
  renameSync(`${certFile}.tmp`, certFile)
  const failed = await scrapeUntil(port, (got) => got.value(metricNames.certificateReloads, { result: 'failure' }) === 1, 'a failed reload')
  t.equal(failed.value(metricNames.securityEvents, { event: 'tls.reload-failed' }), 1, 'also a security event')
  t.equal(failed.value(metricNames.certificateNotAfter, { name: 'default', source: 'files' }), firstNotAfter, 'the certificate still served is the one reported')

  const second = await pki.leaf({ days: 60 })
  writeFileSync(`${keyFile}.tmp`, second.key, { mode: 0o600 })
  writeFileSync(`${certFile}.tmp`, second.fullchain)
  renameSync(`${keyFile}.tmp`, keyFile)
  renameSync(`${certFile}.tmp`, certFile)
  const reloaded = await scrapeUntil(port, (got) => got.value(metricNames.certificateReloads, { result: 'success' }) === 1, 'a reload')
  t.equal(reloaded.value(metricNames.certificateNotAfter, { name: 'default', source: 'files' }), new Date(new X509Certificate(second.cert).validTo).getTime() / 1000, 'the new expiry')
  t.equal(reloaded.value(metricNames.certificateReloads, { result: 'failure' }), 1)
})

t.test('an app that runs prom-client gets the suite\'s metrics in its own registry, process metrics once', async (t) => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const orders = new Counter({ name: 'app_orders_total', help: 'orders', registers: [registry] })
  orders.inc(3)
  const quiet = await startApp({ metrics: { registry, listener: false } })
  t.equal(await quiet.app.secureHttpsMetrics.listening(), null, 'no listener of its own: the app serves its registry')
  t.equal(quiet.app.secureHttpsMetrics.registry, registry)
  const served = await startApp({ metrics: { registry, port: 0 } })
  const port = (await served.app.secureHttpsMetrics.listening())?.port as number
  const got = await scrape(port)
  t.equal(got.value('app_orders_total'), 3, 'the app\'s own metric')
  t.ok(got.types.has(metricNames.tlsHandshakes), 'and the suite\'s')
  t.equal(got.samples.filter((sample) => sample.name === 'process_cpu_user_seconds_total').length, 1, 'process metrics once')
  t.equal(got.samples.filter((sample) => sample.name === metricNames.tlsHandshakes).length, 2, 'two apps sharing a registry share its series')

  await quiet.close()
  t.ok(registry.getSingleMetric(metricNames.securityEvents), 'kept while an app uses them')
  await served.close()
  for (const name of Object.values(metricNames)) t.equal(registry.getSingleMetric(name), undefined, `${name} leaves the app's registry with the last app`)
  t.ok(registry.getSingleMetric('app_orders_total'), 'the app\'s own metrics stay')
  const again = await startApp({ metrics: { registry, listener: false } })
  t.ok(registry.getSingleMetric(metricNames.securityEvents), 'a new app adds them again')
  await again.close()
})

t.test('registered on its own after tls, it still reports the certificate loaded before it', async (t) => {
  const config = resolveConfig({ port: 0, tls: { dir: tempDir('secure-https-metrics-', t) }, httpsRedirect: false })
  if (config.tls === false) throw new Error('tls is off')
  const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(tls, config.tls)
  await app.register(metrics, { listener: false })
  await app.ready()
  const got = parseExposition(await app.secureHttpsMetrics.registry.metrics())
  t.equal(got.value(metricNames.certificateNotAfter, { name: 'default', source: 'self-signed' }), app.tls.status().notAfter.getTime() / 1000)
})

t.test('a listener closed before it started never starts', async (t) => {
  const port = await freePort()
  const dir = tempDir('secure-https-metrics-', t)
  const config = resolveConfig({ port: 0, tls: { dir }, httpsRedirect: false, metrics: { port } })
  const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(secureHttps, config)
  await app.ready()
  await app.close()
  t.equal(await app.secureHttpsMetrics.listening(), null, 'listening() settles with null')
  t.ok(await refused(port))
  rmSync(dir, { recursive: true, force: true })
})

t.test('metrics add no hook to any route: a request that triggers no event runs none of their code', async (t) => {
  const routesOf = async (withMetrics: boolean): Promise<string> => {
    const config = resolveConfig({ port: 0, httpsRedirect: { port: 0 }, tls: { dir: tempDir('secure-https-metrics-', t) }, secureSession: { keys: [KEY] }, metrics: withMetrics ? { port: 0 } : false })
    const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
    t.teardown(() => app.close())
    await app.register(secureHttps, config)
    app.get('/anonymous', async () => ({ hello: 'world' }))
    app.get('/read', async (request) => ({ user: request.session.get('user') ?? null }))
    await app.ready()
    return app.printRoutes({ includeHooks: true, commonPrefix: false })
  }
  const without = await routesOf(false)
  t.match(without, /onRequest/, 'the listing shows the suite\'s own hooks')
  t.equal(await routesOf(true), without, 'the same hooks, route by route, with metrics on')
})

t.test('a registry that already holds the suite\'s metric names is refused with the reason', async (t) => {
  const registry = new Registry()
  const stray = new Counter({ name: metricNames.redirects, help: 'registered by someone else', registers: [registry] })
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => {
    await app.register(metrics, { registry, listener: false })
    await app.ready()
  }, {
    code: 'ERR_SECURE_HTTPS_CONFIG',
    message: /metrics\.registry: already holds secure_https_redirects_total, registered outside this copy of fastify-secure-https/
  })
  t.equal(registry.getSingleMetric(metricNames.redirects), stray, 'the app\'s metric is left alone')
  t.equal(registry.getSingleMetric(metricNames.securityEvents), undefined, 'and nothing half-registered')
})
