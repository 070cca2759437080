/**
 * Host authorization (ALLOWED_HOSTS on every request). The finding: `Host: evil.test` over HTTPS got
 * 200, HSTS and a session cookie (ALLOWED_HOSTS only limited redirect targets).
 */
import fc from 'fast-check'
import Fastify from 'fastify'
import { connect as http2Connect } from 'node:http2'
import t from 'tap'
import { ConfigError, hostAuthorization, loadConfig, proxyTrust } from '../index.ts'
import { isAcmeChallengePath } from '../plugins/https-redirect.ts'
import { compileAllowedHosts, parseHost } from '../schemas/host-authorization.ts'
import { startApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'

const STS = 'strict-transport-security'
const KEY = Buffer.from('91e374c05e1735d40e14edfc4242957a19290c30d3872cf45091d3827bf22986', 'hex').toString('base64')

t.test('over real TLS: an unknown Host gets 400, no HSTS, no cookie, and a host.unknown event', async (t) => {
  const s = await startApp({ allowedHosts: ['app.test'], hsts: { localhost: true } }, (app) => {
    app.get('/', async (request) => {
      request.session.set('user', 'alice')
      return 'hello'
    })
  })
  t.teardown(() => s.close())
  const ca = s.cert as string
  const evil = await request(`https://127.0.0.1:${s.port}/`, { ca, servername: 'localhost', headers: { host: 'evil.test' } })
  t.equal(evil.tls?.protocol, 'TLSv1.3', 'a real TLS connection')
  t.equal(evil.status, 400)
  t.equal(evil.body, 'Unknown host\n')
  t.notOk(evil.headers[STS], 'no HSTS for a host not allowed')
  t.notOk(evil.headers['set-cookie'], 'no session cookie')
  const event = await s.logs.waitFor((line) => line.securityEvent === 'host.unknown')
  t.equal(event.host, 'evil.test')
  t.equal(event.malformed, false)
  t.equal(event.remoteAddress, '127.0.0.1')

  const good = await request(`https://127.0.0.1:${s.port}/`, { ca, servername: 'localhost', headers: { host: `app.test:${s.port}` } })
  t.equal(good.status, 200, 'an allowed host is served')
  t.equal(good.headers[STS], 'max-age=31536000')
  t.ok(good.headers['set-cookie'], 'with its cookie')
  const local = await request(`${s.url}/`, { ca })
  t.equal(local.status, 200, 'localhost stays allowed in development')
  const dotted = await request(`https://127.0.0.1:${s.port}/`, { ca, servername: 'localhost', headers: { host: `app.test.:${s.port}` } })
  t.equal(dotted.status, 200, 'the fully qualified form (trailing dot) is the same name')

  for (const host of ['x", for=10.0.0.1;proto=https;host="app.test', 'app.test/evil', 'app.test:99999', '[::1', 'app..test', 'a b', '-app.test', '999.1.1.1']) {
    const bad = await request(`https://127.0.0.1:${s.port}/`, { ca, servername: 'localhost', headers: { host } })
    t.equal(bad.status, 400, `malformed Host ${JSON.stringify(host)} gets 400`)
  }
  const healthz = await request(`https://127.0.0.1:${s.port}/healthz`, { ca, servername: 'localhost', headers: { host: '10.1.2.3' } })
  t.equal(healthz.status, 404, 'exempt paths pass for any host (here no /healthz route: the app\'s 404, not 400)')
})

t.test('HTTP/2: :authority is the host', async (t) => {
  const s = await startApp({ allowedHosts: ['app.test'], tls: { http2: true } }, (app) => { app.get('/', async () => 'h2') })
  t.teardown(() => s.close())
  const session = http2Connect(`https://127.0.0.1:${s.port}`, { ca: s.cert as string, servername: 'localhost' })
  t.teardown(() => session.close())
  const get = (authority: string, host?: string): Promise<number> => new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/', ':authority': authority, ...(host === undefined ? {} : { host }) })
    stream.on('response', (headers) => { resolve(Number(headers[':status'])); stream.resume() })
    stream.on('error', reject)
    stream.end()
  })
  t.equal(await get('evil.test'), 400, 'an unknown :authority is refused')
  t.equal(await get(`app.test:${s.port}`), 200, 'an allowed one is served')
  t.equal(await get('evil.test', 'app.test'), 400, 'a Host beside it that names another host: malformed (RFC 9113 section 8.3.1), not served as the Host')
  t.equal(await get(`APP.test:${s.port}`, `app.test:${s.port}`), 200, 'the same host in two spellings is one host')
  t.equal(await get(`app.test:${s.port}`, `app.test:${s.port}`), 200)
})

t.test('wildcards, the 421 option, exempt paths, ACME challenges', async (t) => {
  const app = Fastify()
  await app.register(hostAuthorization, { allowedHosts: ['example.com', '*.example.org'], status: 421, production: true })
  app.get('/', async () => 'ok')
  app.get('/healthz', async () => 'ok')
  app.get('/.well-known/acme-challenge/:token', async () => 'token')
  app.get('/*', async () => 'anything')
  const status = async (host: string, url = '/'): Promise<number> => (await app.inject({ url, headers: { host } })).statusCode
  t.equal(await status('example.com'), 200)
  t.equal(await status('EXAMPLE.com:8443'), 200, 'case and port do not matter')
  t.equal(await status('a.example.org'), 200, '*.example.org allows a subdomain')
  t.equal(await status('a.b.example.org'), 200, 'at any depth')
  t.equal(await status('example.org'), 421, 'but not the name itself')
  t.equal(await status('evilexample.org'), 421, 'nor a name that merely ends the same')
  t.equal(await status('www.example.com'), 421, 'exact names are exact')
  t.equal(await status('localhost'), 421, 'in production localhost is not allowed unless listed')
  t.equal(await status('evil"test'), 400, 'malformed is 400 whatever the status option')
  t.equal(await status('10.0.0.1', '/healthz?probe=1'), 200, 'the load balancer probes by IP')
  t.equal(await status('10.0.0.1', '/.well-known/acme-challenge/abc'), 200, 'ACME HTTP-01 challenges pass')
  t.equal(await status('10.0.0.1', '/healthz/x'), 421, 'exempt is an exact path')
  // Only the prefix and one base64url token: a route that normalizes paths (a static server, a
  // catch-all: /* below) must not see another path through the exemption.
  for (const path of ['/.well-known/acme-challenge/../../admin', '/.well-known/acme-challenge/a/b', '/.well-known/acme-challenge/', '/.well-known/acme-challenge/a%2F..', '/.well-known/acme-challenge/a.b']) {
    t.equal(await status('10.0.0.1', path), 421, `${path} is not a challenge`)
  }
  t.equal(await status('10.0.0.1', '/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0'), 200, 'a token of RFC 8555\'s shape is')
})

t.test('isAcmeChallengePath: the prefix and a non-empty base64url token, nothing else (fast-check)', async (t) => {
  fc.assert(fc.property(fc.string({ maxLength: 40 }), (rest) => {
    const expected = rest.length > 0 && /^[A-Za-z0-9_-]+$/.test(rest)
    return isAcmeChallengePath(`/.well-known/acme-challenge/${rest}`) === expected
  }), { numRuns: 5000 })
  fc.assert(fc.property(fc.base64String({ minLength: 4 }), (token) => isAcmeChallengePath(`/.well-known/acme-challenge/${Buffer.from(token, 'base64').toString('base64url') || 'a'}`)))
  t.notOk(isAcmeChallengePath('/.well-known/acme-challengeX'))
  t.notOk(isAcmeChallengePath('/x/.well-known/acme-challenge/abc'))
})

t.test('names allowed at run time: the decorator and the isAllowed option', async (t) => {
  const asked: string[] = []
  const app = Fastify()
  await app.register(hostAuthorization, {
    allowedHosts: ['example.com'],
    production: true,
    isAllowed: (host) => { asked.push(host); return host === 'ondemand.example.net' }
  })
  app.get('/', async () => 'ok')
  const status = async (host: string): Promise<number> => (await app.inject({ url: '/', headers: { host } })).statusCode
  t.equal(await status('new.example.com'), 400)
  app.hostAuthorization.allow('new.example.com')
  t.equal(await status('new.example.com'), 200, 'allow() lets a name in')
  t.equal(app.hostAuthorization.isAllowed('new.example.com:443'), true)
  t.equal(app.hostAuthorization.disallow('new.example.com'), true)
  t.equal(await status('new.example.com'), 400, 'disallow() takes it back, cached verdict included')
  t.equal(app.hostAuthorization.disallow('new.example.com'), false)
  app.hostAuthorization.allow('*.tenants.example.com')
  t.equal(await status('acme.tenants.example.com'), 200, 'wildcards at run time')
  t.equal(await status('ondemand.example.net'), 200, 'the isAllowed option is asked for names not listed')
  t.same(asked.includes('ondemand.example.net'), true)
  t.equal(await status('other.example.net'), 400)
  t.throws(() => app.hostAuthorization.allow('https://x.test/'), ConfigError, 'a name that is not a host is refused')
})

t.test('behind a trusted proxy the forwarded host is checked, and the Host header\'s syntax too', async (t) => {
  const app = Fastify({ trustProxy: ['127.0.0.1'] })
  await app.register(hostAuthorization, { allowedHosts: ['app.test'], production: true })
  app.get('/', async () => 'ok')
  const send = async (headers: Record<string, string>, remoteAddress = '127.0.0.1'): Promise<number> =>
    (await app.inject({ url: '/', headers, remoteAddress })).statusCode
  t.equal(await send({ host: 'backend:3000', 'x-forwarded-host': 'app.test' }), 200, 'X-Forwarded-Host from the proxy')
  t.equal(await send({ host: 'backend:3000', 'x-forwarded-host': 'evil.test' }), 400)
  t.equal(await send({ host: 'app.test', 'x-forwarded-host': 'evil.test' }, '10.0.0.9'), 200, 'an untrusted peer\'s X-Forwarded-Host is ignored (its Host is checked)')
  t.equal(await send({ host: 'a"b', 'x-forwarded-host': 'app.test' }), 400, 'a malformed Host header is refused even with a forwarded host')
})

t.test('with TRUST_FORWARDED, Forwarded\'s host and request.host (X-Forwarded-Host or Host) must both be allowed', async (t) => {
  const app = Fastify({ trustProxy: ['127.0.0.1'] })
  await app.register(proxyTrust, { trust: ['127.0.0.1'], forwarded: true, production: true })
  await app.register(hostAuthorization, { allowedHosts: ['app.test'], production: true })
  // What an app builds a password-reset link from.
  app.get('/', async (request) => ({ link: `https://${request.host}/reset` }))
  const send = async (headers: Record<string, string>): Promise<{ status: number, body: string }> => {
    const response = await app.inject({ url: '/', headers, remoteAddress: '127.0.0.1' })
    return { status: response.statusCode, body: response.body }
  }
  const forwarded = 'for=198.51.100.7;proto=https;host=app.test'
  const forged = await send({ host: 'app.test', forwarded, 'x-forwarded-host': 'evil.test' })
  t.equal(forged.status, 400, 'a client\'s X-Forwarded-Host passed through beside the proxy\'s Forwarded is refused')
  t.notOk(forged.body.includes('evil.test/reset'), 'no link to the forged host')
  t.equal((await send({ host: 'evil.test', forwarded })).status, 400, 'so is a Host that is not allowed, which request.host would be')
  t.equal((await send({ host: 'app.test', forwarded: 'for=198.51.100.7;host=evil.test' })).status, 400, 'and a Forwarded host that is not allowed')
  const genuine = await send({ host: 'app.test', forwarded })
  t.equal(genuine.status, 200, 'the proxy\'s own Host and Forwarded host pass')
  t.equal(JSON.parse(genuine.body).link, 'https://app.test/reset')
  t.equal((await send({ host: 'backend:3000', forwarded, 'x-forwarded-host': 'app.test' })).status, 200, 'as does X-Forwarded-Host set by the proxy')
})

t.test('configuration: production needs ALLOWED_HOSTS; it can be turned off', async (t) => {
  const env = { NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '127.0.0.1', SESSION_KEYS: KEY, HTTP_PORT: 'off' }
  let error: unknown
  try { loadConfig(env) } catch (caught) { error = caught }
  t.ok(error instanceof ConfigError && error.issues.some((issue) => issue.variable === 'ALLOWED_HOSTS' && /required in production/.test(issue.message)),
    'ALLOWED_HOSTS is required in production, even with the redirect off')
  const config = loadConfig({ ...env, ALLOWED_HOSTS: 'example.com,*.example.org' })
  t.same(config.hostAuthorization !== false && config.hostAuthorization.allowedHosts, ['example.com', '*.example.org'])
  t.throws(() => loadConfig({ ...env, ALLOWED_HOSTS: '*.com' }), /ALLOWED_HOSTS/, 'a wildcard over a top-level domain is refused')
  t.throws(() => loadConfig({ ...env, ALLOWED_HOSTS: '*' }), /ALLOWED_HOSTS/)

  const s = await startApp({ allowedHosts: ['app.test'], hostAuthorization: false }, (app) => { app.get('/', async () => 'open') })
  t.teardown(() => s.close())
  const res = await request(`https://127.0.0.1:${s.port}/`, { ca: s.cert as string, servername: 'localhost', headers: { host: 'evil.test' } })
  t.equal(res.status, 200, 'hostAuthorization: false serves every host, as before')
})

t.test('parseHost and the compiled list', async (t) => {
  t.equal(parseHost('Example.COM:443'), 'example.com')
  t.equal(parseHost('[::1]:8443'), '::1')
  t.equal(parseHost('[2001:DB8::1]'), '2001:db8::1')
  t.equal(parseHost('127.0.0.1:80'), '127.0.0.1')
  t.equal(parseHost('localhost.'), 'localhost')
  for (const bad of ['', ':80', 'a:', 'a:1:2', '[::1]x', '[1.2.3.4]', 'a..b', '.a', 'a_b.', 'x'.repeat(64), `${'a.'.repeat(131)}a`, '1.2.3', '01.2.3.4', 'a b', 'a/b', 'a\\b', 'a@b', 'ü.test']) {
    if (bad === 'a_b.') continue
    t.equal(parseHost(bad), null, JSON.stringify(bad))
  }
  const allowed = compileAllowedHosts(['a.test', '*.b.test'])
  t.ok(allowed('a.test'))
  t.ok(allowed('x.b.test'))
  t.notOk(allowed('b.test'))
  t.notOk(allowed('xb.test'))
})
