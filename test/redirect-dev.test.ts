/**
 * Development redirects do not stick, production ones are permanent, and the redirect listener
 * opens its port only when the app listens: `ready()` and `inject()` open none.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { createServer } from 'node:net'
import t, { type Test } from 'tap'
import { httpsRedirect, secureHttps, serverOptions, resolveConfig } from '../index.ts'
import { redirectListenError } from '../plugins/https-redirect.ts'
import { freePort, startApp, tempDir } from './helpers/app.ts'
import { captureLogs } from './helpers/logs.ts'
import { request } from './helpers/http.ts'

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createServer().listen(port, '127.0.0.1')
    socket.once('listening', () => socket.close(() => resolve(false)))
    socket.once('error', () => resolve(true))
  })
}

async function redirectApp (t: Test, production: boolean): Promise<{ url: string }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpsRedirect, { port: 0, httpsPort: 8443, allowedHosts: ['localhost'], production })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = await waitForAddress(app)
  return { url: `http://localhost:${address}` }
}

async function waitForAddress (app: FastifyInstance): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const address = app.httpsRedirect.address()
    if (address !== null) return address.port
    await new Promise((resolve) => setImmediate(resolve))
  }
  throw new Error('the redirect listener did not start')
}

t.test('development: 307 for every method, with Cache-Control: no-store, over a real socket', async (t) => {
  const { url } = await redirectApp(t, false)
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE']) {
    const res = await request(`${url}/a/b?c=d`, { method, ...(method === 'POST' || method === 'PUT' ? { body: 'x=1' } : {}) })
    t.equal(res.status, 307, `${method} gets 307 (temporary: the browser does not remember it)`)
    t.equal(res.headers['cache-control'], 'no-store', `${method}: and must not be cached either`)
    t.equal(res.headers.location, 'https://localhost:8443/a/b?c=d')
  }
})

t.test('production: 301 for GET and HEAD, 308 for the others, cacheable as usual', async (t) => {
  const { url } = await redirectApp(t, true)
  for (const [method, status] of [['GET', 301], ['HEAD', 301], ['POST', 308], ['PUT', 308]] as const) {
    const res = await request(`${url}/a/b?c=d`, { method, ...(method === 'POST' || method === 'PUT' ? { body: 'x=1' } : {}) })
    t.equal(res.status, status, `${method} gets ${status}`)
    t.equal(res.headers['cache-control'], undefined, `${method}: no Cache-Control, so HSTS preload and browsers keep the upgrade`)
    t.equal(res.headers.location, 'https://localhost:8443/a/b?c=d')
  }
})

t.test('behind a proxy (hook mode), development redirects are temporary too', async (t) => {
  const s = await startApp({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] } }, (app) => { app.get('/x', async () => 'x') })
  t.teardown(() => s.close())
  const plain = await request(`${s.url}/x`)
  t.equal(plain.status, 307)
  t.equal(plain.headers['cache-control'], 'no-store')
  t.equal(plain.headers.location, 'https://localhost/x')
})

t.test('ready() and inject() open no port: two apps with the same HTTP_PORT do not collide; listen() opens it', async (t) => {
  const httpPort = await freePort()
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const config = resolveConfig({ tls: { dir: tempDir(undefined, t) }, httpsRedirect: { port: httpPort }, port: 0 })
    const app = Fastify({ ...(await serverOptions(config)) }) as unknown as FastifyInstance
    t.teardown(() => app.close())
    await app.register(secureHttps, config)
    app.get('/', async () => `app ${i}`)
    await app.ready()
    const res = await app.inject({ url: '/', headers: { host: 'localhost' } })
    t.equal(res.body, `app ${i}`, `app ${i} answers inject() after ready()`)
    t.equal(app.httpsRedirect.address(), null, `app ${i}: no redirect listener before listen()`)
    apps.push(app)
  }
  t.equal(await accepts(httpPort), false, 'HTTP_PORT is still free')

  const first = apps[0] as FastifyInstance
  await first.listen({ host: '127.0.0.1', port: 0 })
  t.equal(await waitForAddress(first), httpPort)
  const res = await request(`http://localhost:${httpPort}/`)
  t.equal(res.status, 307, 'after listen() the port answers with the redirect')
  t.equal(res.headers.location, `https://localhost:${(first.server.address() as { port: number }).port}/`)

  await first.close()
  t.equal(await accepts(httpPort), false, 'and close() frees it again')
})

t.test('a taken HTTP_PORT: the error is logged with the fix, and the app serves HTTPS anyway', async (t) => {
  const blocker = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => blocker.once('listening', resolve))
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
  const port = (blocker.address() as { port: number }).port
  const logs = captureLogs('info')
  const config = resolveConfig({ tls: { dir: tempDir(undefined, t) }, httpsRedirect: { port }, port: 0 })
  const app = Fastify({ logger: logs.logger, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(secureHttps, config)
  app.get('/', async () => 'still here')
  await app.listen({ host: '127.0.0.1', port: 0 })
  const logged = await logs.waitFor((line) => line.level === 50 && /redirect listener/.test(JSON.stringify(line)))
  t.match(JSON.stringify(logged), /EADDRINUSE\): another process has that port.*HTTP_PORT=off/, 'logged at error level, with the fix')
  t.match(app.httpsRedirect.error()?.message, /EADDRINUSE/)
  t.equal(app.httpsRedirect.address(), null)
  const summary = await logs.waitFor((line) => /development server ready/.test(String(line.msg)))
  t.match(String(summary.msg), /redirect +NOT listening: .*EADDRINUSE/, 'the start-up summary says so too')
  const served = await request(`https://localhost:${(app.server.address() as { port: number }).port}/`, { insecure: true })
  t.equal(served.body, 'still here')
})

t.test('the listener errors name the fix: privileged ports, ports in use', async (t) => {
  const eacces = redirectListenError('0.0.0.0', 80, Object.assign(new Error('listen EACCES'), { code: 'EACCES' }))
  t.equal((eacces as Error & { code: string }).code, 'ERR_SECURE_HTTPS_REDIRECT_LISTEN')
  t.match(eacces.message, /0\.0\.0\.0:80 \(EACCES\): ports below 1024 are privileged.*setcap cap_net_bind_service.*ip_unprivileged_port_start.*HTTP_PORT=8080/)
  const high = redirectListenError('0.0.0.0', 8080, Object.assign(new Error('listen EACCES'), { code: 'EACCES' }))
  t.notMatch(high.message, /privileged/, 'a high port denied is something else (a sandbox, SELinux)')
  const inUse = redirectListenError('127.0.0.1', 8080, Object.assign(new Error('x'), { code: 'EADDRINUSE' }))
  t.match(inUse.message, /EADDRINUSE\): another process has that port \(find it with: ss -ltnp 'sport = :8080'\)/)
})
