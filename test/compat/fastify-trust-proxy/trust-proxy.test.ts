/**
 * Fastify's own trust-proxy tests (fastify/fastify test/trust-proxy.test.js) run against an instance
 * built the suite's way: `Fastify({ ...(await serverOptions(config)) })` with `proxyTrust` registered
 * from the same config. What Fastify promises about request.ip, ips, host, hostname, port and
 * protocol must hold with the suite in place. Differences (no trust functions, no hop counts, and
 * the socketless tests through the public `fastify.routing()` instead of Fastify's private Request
 * builder) are listed in docs/compat.md.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { IncomingMessage, ServerResponse } from 'node:http'
import t, { type Test } from 'tap'
import { ConfigError, proxyTrust, resolveConfig, serverOptions } from '../../../index.ts'
import type { ProxyTrustOptions } from '../../../index.ts'

const localhost = '127.0.0.1'

async function build (t: { teardown (fn: () => unknown): void }, trust: ProxyTrustOptions['trust']): Promise<FastifyInstance> {
  const config = resolveConfig({ tls: { mode: 'proxy' }, proxyTrust: { trust } })
  const app = Fastify({ ...(await serverOptions(config)) }) as unknown as FastifyInstance
  if (config.proxyTrust !== false) await app.register(proxyTrust, config.proxyTrust)
  t.teardown(() => app.close())
  return app
}

function fetchForwardedRequest (server: string, forHeader: string, path: string, protoHeader?: string, hostHeader = 'fastify.test'): Promise<Response> {
  const headers: Record<string, string> = { 'X-Forwarded-For': forHeader, 'X-Forwarded-Host': hostHeader }
  if (protoHeader !== undefined) headers['X-Forwarded-Proto'] = protoHeader
  return fetch(server + path, { headers })
}

interface Expected { ip?: string, host?: string, hostname?: string, ips?: string[], protocol?: string, port?: number | null }

function testRequestValues (t: Test, req: FastifyRequest, options: Expected): void {
  if (options.ip !== undefined) t.equal(req.ip, options.ip, 'gets ip from x-forwarded-for')
  if (options.host !== undefined) t.equal(req.host, options.host, 'gets host from x-forwarded-host')
  if (options.hostname !== undefined) t.equal(req.hostname, options.hostname, 'gets hostname from x-forwarded-host')
  if (options.ips !== undefined) t.same(req.ips, options.ips, 'gets ips from x-forwarded-for')
  if (options.protocol !== undefined) t.equal(req.protocol, options.protocol, 'gets protocol from x-forwarded-proto')
  if ('port' in options) t.equal(req.port, options.port, 'port is parsed from x-forwarded-host')
}

/** Ends every response with its status, so a failed route (500) fails the test loudly. */
async function expectOk (t: Test, response: Promise<Response>): Promise<void> {
  const res = await response
  t.equal(res.status, 200, `answered 200 (${res.status === 200 ? '' : await res.text()})`)
}

t.test('trust proxy, not add properties to node req', async (t) => {
  const app = await build(t, true)
  app.get('/trustproxy', async (req) => {
    testRequestValues(t, req, { ip: '1.1.1.1', host: 'fastify.test:1234', hostname: 'fastify.test', port: 1234 })
    return { ip: req.ip, host: req.host }
  })
  app.get('/trustproxychain', async (req) => {
    testRequestValues(t, req, { ip: '2.2.2.2', ips: [localhost, '1.1.1.1', '2.2.2.2'], port: null })
    return { ip: req.ip, host: req.host }
  })
  const server = await app.listen({ port: 0, host: localhost })
  await expectOk(t, fetchForwardedRequest(server, '1.1.1.1', '/trustproxy', undefined, 'fastify.test:1234'))
  await expectOk(t, fetchForwardedRequest(server, '2.2.2.2, 1.1.1.1', '/trustproxychain'))
})

t.test('trust proxy chain', async (t) => {
  const app = await build(t, [localhost, '192.168.1.1'])
  app.get('/trustproxychain', async (req) => {
    testRequestValues(t, req, { ip: '1.1.1.1', host: 'fastify.test:1234', hostname: 'fastify.test', port: 1234 })
    return { ip: req.ip, host: req.host }
  })
  const server = await app.listen({ port: 0, host: localhost })
  await expectOk(t, fetchForwardedRequest(server, '192.168.1.1, 1.1.1.1', '/trustproxychain', undefined, 'fastify.test:1234'))
})

t.test('trust proxy function: refused, a list of addresses says the same', async (t) => {
  // Difference: proxyTrust.trust is data (addresses), so that serverOptions, the doctor and the
  // instance check can all read it; a function is a ConfigError. The same trust as a list:
  t.throws(() => resolveConfig({ tls: { mode: 'proxy' }, proxyTrust: { trust: ((address: string) => address === localhost) as never } }), ConfigError)
  const app = await build(t, [localhost])
  app.get('/trustproxyfunc', async (req) => {
    testRequestValues(t, req, { ip: '1.1.1.1', host: 'fastify.test:1234', hostname: 'fastify.test', port: 1234 })
    return { ip: req.ip, host: req.host }
  })
  const server = await app.listen({ port: 0, host: localhost })
  await expectOk(t, fetchForwardedRequest(server, '1.1.1.1', '/trustproxyfunc', undefined, 'fastify.test:1234'))
})

t.test('trust proxy number ignores forwarded headers: a hop count is refused outright', async (t) => {
  // Difference: Fastify 5.12.1 ignores a number; the suite refuses it at start, saying why.
  t.throws(() => resolveConfig({ tls: { mode: 'proxy' }, proxyTrust: { trust: 1 as never } }), /hop count/)
  const app = await build(t, ['10.0.0.1'])
  app.get('/trustproxynumber', async (req) => {
    t.equal(req.ip, '203.0.113.7', 'ip falls back to socket remote address')
    t.same(req.ips, ['203.0.113.7'], 'ips falls back to socket remote address')
    t.equal(req.host, 'app.example.com', 'host ignores x-forwarded-host')
    t.equal(req.hostname, 'app.example.com', 'hostname ignores x-forwarded-host')
    t.equal(req.protocol, 'http', 'protocol ignores x-forwarded-proto')
    return { ip: req.ip }
  })
  const res = await app.inject({
    method: 'GET',
    url: '/trustproxynumber',
    remoteAddress: '203.0.113.7',
    headers: { host: 'app.example.com', 'x-forwarded-for': '9.9.9.9, 8.8.8.8', 'x-forwarded-host': 'evil.com', 'x-forwarded-proto': 'https' }
  })
  t.equal(res.statusCode, 200)
})

t.test('trust proxy IP addresses', async (t) => {
  const app = await build(t, `${localhost}, 2.2.2.2`)
  app.get('/trustproxyipaddrs', async (req) => {
    testRequestValues(t, req, { ip: '1.1.1.1', ips: [localhost, '1.1.1.1'], host: 'fastify.test:1234', hostname: 'fastify.test', port: 1234 })
    return { ip: req.ip, host: req.host }
  })
  const server = await app.listen({ port: 0, host: localhost })
  await expectOk(t, fetchForwardedRequest(server, '3.3.3.3, 2.2.2.2, 1.1.1.1', '/trustproxyipaddrs', undefined, 'fastify.test:1234'))
})

t.test('trust proxy protocol', async (t) => {
  const app = await build(t, true)
  app.get('/trustproxyprotocol', async (req) => {
    testRequestValues(t, req, { ip: '1.1.1.1', protocol: 'lorem', host: 'fastify.test:1234', hostname: 'fastify.test', port: 1234 })
    return { ip: req.ip }
  })
  app.get('/trustproxynoprotocol', async (req) => {
    testRequestValues(t, req, { ip: '1.1.1.1', protocol: 'http', host: 'fastify.test:1234', hostname: 'fastify.test', port: 1234 })
    return { ip: req.ip }
  })
  app.get('/trustproxyprotocols', async (req) => {
    testRequestValues(t, req, { ip: '1.1.1.1', protocol: 'dolor', host: 'fastify.test:1234', hostname: 'fastify.test', port: 1234 })
    return { ip: req.ip }
  })
  const server = await app.listen({ port: 0, host: localhost })
  await expectOk(t, fetchForwardedRequest(server, '1.1.1.1', '/trustproxyprotocol', 'lorem', 'fastify.test:1234'))
  await expectOk(t, fetchForwardedRequest(server, '1.1.1.1', '/trustproxynoprotocol', undefined, 'fastify.test:1234'))
  await expectOk(t, fetchForwardedRequest(server, '1.1.1.1', '/trustproxyprotocols', 'ipsum, dolor', 'fastify.test:1234'))
})

t.test('trust proxy port is null when x-forwarded-host has no port', async (t) => {
  const app = await build(t, true)
  app.get('/trustproxynoport', async (req) => {
    testRequestValues(t, req, { host: 'fastify.test', hostname: 'fastify.test', port: null })
    return { host: req.host, port: req.port }
  })
  const server = await app.listen({ port: 0, host: localhost })
  await expectOk(t, fetchForwardedRequest(server, '1.1.1.1', '/trustproxynoport'))
})

t.test('trust proxy ignores forwarded headers from untrusted connections', async (t) => {
  const app = await build(t, '10.0.0.1')
  app.get('/untrusted', async (req) => {
    t.equal(req.protocol, 'http', 'protocol ignores x-forwarded-proto from untrusted connection')
    t.not(req.host, 'evil.com', 'host ignores x-forwarded-host from untrusted connection')
    t.not(req.hostname, 'evil.com', 'hostname ignores x-forwarded-host from untrusted connection')
    t.equal(req.secure, false, 'and the suite\'s request.secure agrees')
    return { protocol: req.protocol, host: req.host }
  })
  const server = await app.listen({ port: 0, host: localhost })
  await expectOk(t, fetch(server + '/untrusted', { headers: { 'X-Forwarded-For': '1.1.1.1', 'X-Forwarded-Host': 'evil.com', 'X-Forwarded-Proto': 'https' } }))
})

t.test('trust proxy reads forwarded headers from trusted connections', async (t) => {
  const app = await build(t, [localhost])
  app.get('/trusted', async (req) => {
    t.equal(req.protocol, 'https', 'protocol reads x-forwarded-proto from trusted connection')
    t.equal(req.host, 'example.com', 'host reads x-forwarded-host from trusted connection')
    t.equal(req.secure, true, 'and the suite\'s request.secure agrees')
    return { protocol: req.protocol, host: req.host }
  })
  const server = await app.listen({ port: 0, host: localhost })
  await expectOk(t, fetch(server + '/trusted', { headers: { 'X-Forwarded-For': '1.1.1.1', 'X-Forwarded-Host': 'example.com', 'X-Forwarded-Proto': 'https' } }))
})

/**
 * A request without a real socket, through the public `fastify.routing()` (Fastify's own tests
 * build its private Request class instead): a serverless adapter's request.
 */
function route (app: FastifyInstance, socket: unknown, headers: Record<string, string>): Promise<{ status: number, body: string }> {
  const req = new IncomingMessage(null as never)
  req.method = 'GET'
  req.url = '/'
  req.headers = headers
  Object.defineProperty(req, 'socket', { value: socket, configurable: true })
  const res = new ServerResponse(req)
  return new Promise((resolve) => {
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      resolve({ status: res.statusCode, body: String(chunk ?? '') })
      return end(chunk, ...rest)
    }) as typeof res.end
    app.routing(req, res)
  })
}

t.test('trust proxy with undefined socket remoteAddress ignores forwarded headers', async (t) => {
  // Difference: a list of addresses instead of the hop count 1 (refused here); the expectation is
  // the same: a request from no known peer is not believed.
  const app = await build(t, [localhost])
  app.get('/', async (req) => ({ host: req.host, protocol: req.protocol, secure: req.secure }))
  await app.ready()
  const res = await route(app, { remoteAddress: undefined }, { host: 'real.test', 'x-forwarded-for': '2.2.2.2, 1.1.1.1', 'x-forwarded-host': 'fastify.test', 'x-forwarded-proto': 'https' })
  t.equal(res.status, 200, 'answered, no TypeError in the suite\'s hooks')
  t.same(JSON.parse(res.body), { host: 'real.test', protocol: 'http', secure: false }, 'host and protocol ignore the forwarded headers')
})

t.test('trust proxy with null socket remoteAddress ignores forwarded headers', async (t) => {
  const app = await build(t, [localhost])
  app.get('/', async (req) => ({ host: req.host, secure: req.secure }))
  await app.ready()
  const res = await route(app, { remoteAddress: null }, { host: 'real.test', 'x-forwarded-for': '2.2.2.2, 1.1.1.1', 'x-forwarded-host': 'fastify.test' })
  t.equal(res.status, 200)
  t.same(JSON.parse(res.body), { host: 'real.test', secure: false })
})

t.test('trust proxy does not trust x-forwarded-host/proto when socket is null', async (t) => {
  const app = await build(t, true)
  app.get('/', async (req) => ({ host: req.host, protocol: req.protocol ?? null, secure: req.secure }))
  await app.ready()
  const res = await route(app, null, { host: 'real.test', 'x-forwarded-host': 'spoofed.test', 'x-forwarded-proto': 'https' })
  t.equal(res.status, 200)
  t.same(JSON.parse(res.body), { host: 'real.test', protocol: null, secure: false }, 'falls back to the Host header; protocol unknown; not secure')
})
