/**
 * Proxy trust: the options (hop counts refused, `true` only outside production, presets), the
 * register-time check against the instance's trustProxy, and how `request.secure` reads
 * X-Forwarded-Proto and Forwarded, over real sockets from a trusted (127.0.0.1) and an untrusted
 * (127.0.0.2) loopback address. The real proxies are in proxy-nginx and proxy-haproxy.test.ts.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { ConfigError, lastForwardedElement, loadConfig, proxyTrust, proxyTrustSchema, serverOptions } from '../index.ts'
import { eventLimiter } from '../plugins/events.ts'
import { compileTrust, describeTrust, lastEntry } from '../plugins/proxy-trust.ts'
import { trustProxyValue } from '../schemas/proxy-trust.ts'
import { startApp, type StartedApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'
import { captureLogs } from './helpers/logs.ts'
import { configErrorOf } from './helpers/config.ts'

const TRUSTED = '127.0.0.1'
const UNTRUSTED = '127.0.0.2'

const configError = configErrorOf

t.test('TRUST_PROXY: addresses only', async (t) => {
  const hop = configError(() => loadConfig({ TLS_MODE: 'proxy', TRUST_PROXY: '1' }))
  t.equal(hop.issues.length, 1, 'one problem')
  t.equal(hop.issues[0]?.variable, 'TRUST_PROXY')
  t.match(hop.issues[0]?.message, /1 is a hop count; hop counts are refused: .*the client writes those entries itself.*TRUST_PROXY=127\.0\.0\.1/, 'a hop count is refused, saying why and what to write')
  const inList = configError(() => loadConfig({ TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.1,2' }))
  t.match(inList.message, /"2" looks like a hop count/)
  t.match(proxyTrustSchema.safeParse({ trust: 3 }).error?.issues[0]?.message, /^3 is a hop count/, 'in code too')

  const bad = configError(() => loadConfig({ TLS_MODE: 'proxy', TRUST_PROXY: 'proxy.internal,10.0.0.0/33,::1/129' }))
  t.equal(bad.issues.length, 3, 'every bad entry reported')
  t.match(bad.message, /"proxy\.internal" is not an IP address, a CIDR range or one of loopback, linklocal, uniquelocal/)
  t.match(bad.message, /"10\.0\.0\.0\/33"/)
  t.match(bad.message, /"::1\/129"/)
  t.match(proxyTrustSchema.safeParse({ trust: { a: 1 } }).error?.issues[0]?.message, /must be false, true \(development only\) or a list/)

  const dev = loadConfig({ TRUST_PROXY: 'true' }).proxyTrust
  t.equal(dev === false ? undefined : dev.trust, true, 'true is allowed in development')
  const everyone = configError(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: 'true', ALLOWED_HOSTS: 'example.com' }))
  t.match(everyone.issues.find((issue) => issue.variable === 'TRUST_PROXY')?.message, /trusting every peer is refused in production/)
  t.match(configError(() => loadConfig({ TLS_MODE: 'proxy', TRUST_PROXY: 'false' })).message, /TRUST_PROXY: is required with TLS_MODE=proxy/)

  const mixed = loadConfig({ TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.0/8, fd00::/8 ,loopback,192.168.1.10', TRUST_FORWARDED: 'true' })
  if (mixed.proxyTrust === false) throw new Error('proxyTrust missing')
  t.same(mixed.proxyTrust.trust, ['10.0.0.0/8', 'fd00::/8', 'loopback', '192.168.1.10'], 'IPs, v4 and v6 CIDRs and presets')
  t.equal(mixed.proxyTrust.forwarded, true, 'TRUST_FORWARDED=true turns Forwarded on')
  t.match(configError(() => loadConfig({ TLS_MODE: 'proxy', TRUST_PROXY: '127.0.0.1', TRUST_FORWARDED: 'maybe' })).message, /TRUST_FORWARDED: "maybe" is not a boolean/)
  t.same(proxyTrustSchema.parse({ trust: '127.0.0.1, loopback' }).trust, ['127.0.0.1', 'loopback'], 'a comma string, as Fastify accepts, in code')

  t.same(trustProxyValue(['loopback', '10.0.0.1']), ['127.0.0.1/8', '::1/128', '10.0.0.1'], 'presets are expanded for Fastify')
  t.same(trustProxyValue(['linklocal']), ['169.254.0.0/16', 'fe80::/10'])
  t.same(trustProxyValue(['uniquelocal']), ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'])
  t.equal(trustProxyValue([]), false, 'an empty list trusts no one')
  t.same((await serverOptions({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['loopback'] } })).trustProxy, ['127.0.0.1/8', '::1/128'], 'serverOptions hands Fastify the same list')
  t.equal((await serverOptions({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['loopback'] } })).https, null, 'and no TLS: it ends at the proxy')
})

t.test('the plugin checks the instance was built with the same trust, at the first forwarded request of each peer', async (t) => {
  const build = async (trustProxy: unknown, trust: unknown): Promise<FastifyInstance> => {
    const app = Fastify({ trustProxy: trustProxy as boolean }) as unknown as FastifyInstance
    t.teardown(() => app.close())
    await app.register(proxyTrust, { trust: trust as string[] })
    app.get('/', async (request) => ({ ip: request.ip, protocol: request.protocol, secure: request.secure }))
    await app.ready()
    return app
  }
  const forwardedFrom = (app: FastifyInstance, remoteAddress: string) => app.inject({
    url: '/',
    remoteAddress,
    headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' }
  })
  const mismatch = async (trustProxy: unknown, trust: unknown, peer: string, why: RegExp, message: string): Promise<void> => {
    const app = await build(trustProxy, trust)
    const answer = await forwardedFrom(app, peer)
    t.equal(answer.statusCode, 500, `${message}: the request fails closed`)
    const body = answer.json() as { code?: string, message?: string }
    t.equal(body.code, 'ERR_SECURE_HTTPS_INSTANCE_MISMATCH', message)
    t.match(body.message, why, message)
    t.match(body.message, /Fastify\(\{ \.\.\.\(await serverOptions\(config\)\) \}\)/, `${message}: says what to pass to Fastify()`)
    const plain = await app.inject({ url: '/', remoteAddress: peer })
    t.equal(plain.statusCode, 200, `${message}: a request without forwarding headers is not affected`)
  }
  await mismatch(false, ['127.0.0.1'], '127.0.0.1', /request\.ips is \["127\.0\.0\.1"\] where TRUST_PROXY gives \["127\.0\.0\.1","203\.0\.113\.9"\]/, 'Fastify() without trustProxy')
  await mismatch(1, ['127.0.0.1'], '127.0.0.1', /request\.protocol is http where TRUST_PROXY gives https/, 'a hop count in Fastify() (which trusts no one)')
  await mismatch(true, ['127.0.0.1'], '127.0.0.2', /peer 127\.0\.0\.2: request\.ips is \["127\.0\.0\.2","203\.0\.113\.9"\] where TRUST_PROXY gives \["127\.0\.0\.2"\]/, 'Fastify() trusting more than TRUST_PROXY (request.ip spoofable)')
  await mismatch(['10.0.0.1'], ['127.0.0.1'], '127.0.0.1', /request\.ips/, 'another list')

  const agree = async (trustProxy: unknown, trust: unknown, peer: string, message: string): Promise<void> => {
    const app = await build(trustProxy, trust)
    const answer = await forwardedFrom(app, peer)
    t.equal(answer.statusCode, 200, message)
  }
  await agree('127.0.0.1/8, ::1/128', ['loopback'], '127.0.0.1', 'a preset matches its ranges, in any spelling')
  await agree('loopback', ['::1/128', '127.0.0.1/8'], '127.0.0.1', 'in any order')
  await agree(false, false, '127.0.0.1', 'trusting no one on both sides')
  await agree(['127.0.0.1'], ['127.0.0.1'], '127.0.0.2', 'an untrusted peer on both sides')
  const built = await serverOptions({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['loopback'] } })
  await agree(built.trustProxy, ['loopback'], '127.0.0.1', 'the instance built with serverOptions()')
  // An empty X-Forwarded-Proto is no header for Fastify (request.protocol falls back to the
  // socket's): the first forwarded request of a peer must not read it as a mismatch.
  // (Node's HTTP parser trims a header of spaces to empty too.)
  const emptyProto = await build(built.trustProxy, ['loopback'])
  const answer = await emptyProto.inject({ url: '/', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': '' } })
  t.equal(answer.statusCode, 200, 'an empty X-Forwarded-Proto from a trusted peer, first: no false mismatch')
  t.same(answer.json(), { ip: '203.0.113.9', protocol: 'http', secure: false }, 'and the request is plain HTTP')

  const logs = captureLogs('warn')
  const everyone = Fastify({ trustProxy: true, logger: logs.logger }) as unknown as FastifyInstance
  t.teardown(() => everyone.close())
  await everyone.register(proxyTrust, { trust: true })
  await everyone.ready()
  t.match(logs.lines.map((line) => line.msg), [/TRUST_PROXY=true trusts every peer/], 'trusting everyone in development is allowed, with a warning')
  const production = Fastify({ trustProxy: true }) as unknown as FastifyInstance
  t.teardown(() => production.close())
  await t.rejects(async () => {
    await production.register(proxyTrust, { trust: true, production: true })
    await production.ready()
  }, ConfigError, 'and refused in production')

  t.equal(describeTrust(undefined), 'false')
  t.equal(describeTrust([]), 'false')
})

/** An app behind an imaginary proxy at 127.0.0.1; /probe tells what the request looks like. */
async function probeApp (t: Test, proxy: { forwarded?: boolean, eventsPerMinute?: number } = {}): Promise<StartedApp> {
  const s = await startApp({
    tls: { mode: 'proxy' },
    proxyTrust: { trust: [TRUSTED], ...proxy },
    httpsRedirect: { exempt: ['/probe'] }
  }, (app) => {
    app.get('/probe', async (request) => ({
      secure: request.secure,
      protocol: request.protocol,
      forwarded: request.forwarded,
      header: request.headers['x-forwarded-proto'] ?? null
    }))
    app.get('/', async () => 'home')
  })
  t.teardown(() => s.close())
  return s
}

interface Probe { secure: boolean, protocol: string, forwarded: unknown, header: string | null }

async function probe (s: StartedApp, from: string, headers: Record<string, string | string[]>): Promise<Probe> {
  const res = await request(`http://127.0.0.1:${s.port}/probe`, { localAddress: from, headers })
  return JSON.parse(res.body) as Probe
}

t.test('X-Forwarded-Proto: believed from the trusted peer only, last entry wins as in Fastify', async (t) => {
  const s = await probeApp(t)
  t.match(await probe(s, TRUSTED, { 'x-forwarded-proto': 'https' }), { secure: true, protocol: 'https' })
  t.match(await probe(s, TRUSTED, { 'x-forwarded-proto': 'http' }), { secure: false, protocol: 'http' })
  t.match(await probe(s, TRUSTED, {}), { secure: false, protocol: 'http' }, 'no header: plain HTTP')
  t.match(await probe(s, TRUSTED, { 'x-forwarded-proto': ' HTTPS ' }), { secure: true }, 'the scheme is case-insensitive')

  // A comma chain (a proxy that appends its own value after the client's): the last entry is the
  // proxy's, the one Fastify's request.protocol reads too.
  t.match(await probe(s, TRUSTED, { 'x-forwarded-proto': 'http, https' }), { secure: true, protocol: 'https' }, 'comma chain: last entry')
  t.match(await probe(s, TRUSTED, { 'x-forwarded-proto': 'https,http' }), { secure: false, protocol: 'http' }, 'a client\'s "https" before the proxy\'s "http" does not win')
  // Two header lines: Node joins them with ", ", so the last line wins, the same way.
  t.same(await probe(s, TRUSTED, { 'x-forwarded-proto': ['https', 'http'] }), { secure: false, protocol: 'http', forwarded: null, header: 'https, http' }, 'duplicate lines are joined: last line wins')
  t.match(await probe(s, TRUSTED, { 'x-forwarded-proto': ['http', 'https'] }), { secure: true, protocol: 'https', header: 'http, https' })

  t.match(await probe(s, UNTRUSTED, { 'x-forwarded-proto': 'https' }), { secure: false, protocol: 'http' }, 'from an untrusted peer the header is ignored, by Fastify too')
  t.match(await probe(s, UNTRUSTED, { 'x-forwarded-proto': 'http, https' }), { secure: false, protocol: 'http' })
  const redirect = await request(`http://127.0.0.1:${s.port}/`, { localAddress: UNTRUSTED, headers: { 'x-forwarded-proto': 'https', host: 'localhost' } })
  t.equal(redirect.status, 307, 'and the in-app redirect sends it to HTTPS')
  t.equal(redirect.headers.location, 'https://localhost/', 'on the public port (443 by default behind a proxy)')
  const passed = await request(`http://127.0.0.1:${s.port}/`, { localAddress: TRUSTED, headers: { 'x-forwarded-proto': 'https', host: 'localhost' } })
  t.equal(passed.status, 200, 'the trusted proxy saying https passes')

  t.match(await probe(s, TRUSTED, { forwarded: 'proto=https' }), { secure: false, forwarded: null }, 'Forwarded is ignored unless TRUST_FORWARDED is on')
})

t.test('TLS on the socket itself is secure, whatever the headers say', async (t) => {
  const s = await startApp({ proxyTrust: { trust: [TRUSTED], forwarded: true } }, (app) => {
    app.get('/probe', async (request) => ({ secure: request.secure, forwarded: request.forwarded }))
  })
  t.teardown(() => s.close())
  const res = await request(`${s.url}/probe`, { ca: s.cert as string, headers: { 'x-forwarded-proto': 'http', forwarded: 'proto=http' } })
  t.same(JSON.parse(res.body), { secure: true, forwarded: null })
})

t.test('Forwarded (RFC 7239), opt-in', async (t) => {
  const s = await probeApp(t, { forwarded: true })
  t.match(await probe(s, TRUSTED, { forwarded: 'for=192.0.2.60;proto=https;by=203.0.113.43' }), { secure: true, protocol: 'http', forwarded: { for: '192.0.2.60', proto: 'https', by: '203.0.113.43' } }, 'Forwarded alone: secure (Fastify\'s request.protocol does not read it)')
  t.match(await probe(s, TRUSTED, { forwarded: 'for="[2001:db8:cafe::17]:4711";proto="HTTPS";host="example.com:8443"' }), { secure: true, forwarded: { for: '[2001:db8:cafe::17]:4711', proto: 'https', host: 'example.com:8443' } }, 'quoted values')
  t.match(await probe(s, TRUSTED, { forwarded: 'for=1.2.3.4;proto=https, for=10.0.0.1;proto=http' }), { secure: false, forwarded: { for: '10.0.0.1' } }, 'the last element, added by the nearest proxy, wins')
  t.match(await probe(s, TRUSTED, { forwarded: ['proto=http', 'proto=https'] }), { secure: true }, 'two header lines: the last')
  t.match(await probe(s, TRUSTED, { forwarded: 'proto=https;proto=http' }), { secure: false, forwarded: null }, 'a repeated parameter is malformed: ignored')
  t.match(await probe(s, TRUSTED, { forwarded: 'nonsense', 'x-forwarded-proto': 'https' }), { secure: true, forwarded: null }, 'a malformed Forwarded falls back to X-Forwarded-Proto')
  t.match(await probe(s, TRUSTED, { forwarded: 'proto=https', 'x-forwarded-proto': 'https' }), { secure: true }, 'both, agreeing')
  t.match(await probe(s, UNTRUSTED, { forwarded: 'proto=https' }), { secure: false, forwarded: null }, 'from an untrusted peer: ignored')

  t.match(await probe(s, TRUSTED, { forwarded: 'proto=https', 'x-forwarded-proto': 'http' }), { secure: false }, 'both, disagreeing: not secure')
  t.match(await probe(s, TRUSTED, { forwarded: 'proto=http', 'x-forwarded-proto': 'https' }), { secure: false }, 'either way round')
  const conflicts = s.logs.events('proxy.conflicting-forwarded')
  t.equal(conflicts.length, 2, 'each disagreement is logged')
  t.match(conflicts[0], { level: 40, remoteAddress: TRUSTED, xForwardedProto: 'http', forwardedProto: 'https' })
})

t.test('spoofing is logged, rate-limited', async (t) => {
  const s = await probeApp(t, { eventsPerMinute: 2 })
  for (let i = 0; i < 5; i++) await probe(s, UNTRUSTED, { 'x-forwarded-proto': 'https', 'x-forwarded-for': '10.9.9.9' })
  await probe(s, TRUSTED, { 'x-forwarded-proto': 'https', 'x-forwarded-for': '10.9.9.9' })
  const events = s.logs.events('proxy.untrusted-forwarded')
  t.equal(events.length, 2, 'five spoofed requests, two events: the log cannot be flooded')
  t.match(events[0], { level: 40, remoteAddress: UNTRUSTED, headers: ['x-forwarded-proto', 'x-forwarded-for'], suppressed: 0 })
  t.notOk(events.some((line) => line.remoteAddress === TRUSTED), 'the trusted proxy never triggers it')

  // The count of what was held back is reported with the next event let through.
  let now = 0
  const limit = eventLimiter(2, () => now)
  t.same([limit(), limit(), limit(), limit(), limit()], [0, 0, false, false, false])
  now = 60_000
  t.equal(limit(), 3, 'next minute: three suppressed')
  t.equal(limit(), 0)
})

t.test('IPv4-mapped peers and IPv6 trust (inject: the address family is the logic under test)', async (t) => {
  const app = Fastify({ ...(await serverOptions({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1', 'fd00::/8'] } })) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(proxyTrust, { trust: ['127.0.0.1', 'fd00::/8'] })
  app.get('/', async (request) => ({ secure: request.secure }))
  const ask = async (remoteAddress: string): Promise<boolean> =>
    (JSON.parse((await app.inject({ url: '/', remoteAddress, headers: { 'x-forwarded-proto': 'https' } })).body) as { secure: boolean }).secure
  t.equal(await ask('::ffff:127.0.0.1'), true, 'an IPv4-mapped IPv6 peer matches its IPv4 entry')
  t.equal(await ask('fd00::1:2'), true, 'an IPv6 CIDR')
  t.equal(await ask('fe80::1'), false)
  t.equal(await ask('127.0.0.2'), false)
})

t.test('parsers', async (t) => {
  const trusted = compileTrust(['10.0.0.0/8'])
  t.equal(trusted('10.1.2.3'), true)
  for (let i = 0; i < 1100; i++) trusted(`192.0.2.${i % 256}.${i}`.slice(0, 15))
  t.equal(trusted('10.1.2.3'), true, 'still right once the bounded cache of addresses has been cleared')
  t.equal(trusted('11.1.2.3'), false)
  t.equal(compileTrust(true)('1.2.3.4'), true)
  t.equal(compileTrust(false)('127.0.0.1'), false)
  t.equal(lastEntry('http, HTTPS '), 'https')
  t.equal(lastEntry('https'), 'https')
  t.same(lastForwardedElement('for=_a;proto=https,'), { for: '_a', proto: 'https' }, 'a trailing comma is skipped')
  t.same(lastForwardedElement('ext="a,b";proto=http'), { proto: 'http' }, 'a comma inside quotes does not split')
  t.same(lastForwardedElement('ext="a\\"b, for=1.2.3.4";proto=https'), { proto: 'https' }, 'quoted-pair: an escaped quote does not close the string')
  t.same(lastForwardedElement('For=_x;EXT=1'), { for: '_x' }, 'names are case-insensitive; unknown ones are skipped')
  t.equal(lastForwardedElement('for=a'), null, 'for must be a node (RFC 7239 section 6): an IP, unknown or _obfuscated')
  t.equal(lastForwardedElement(''), null)
  t.equal(lastForwardedElement('proto="https'), null, 'an unterminated quote')
})
