/**
 * Proxy trust findings: ranges that trust the internet, a /0 that crashed Fastify(), the quadratic
 * Forwarded parser, and requests without a socket. Fuzzed with fast-check.
 */
import Fastify from 'fastify'
import fc from 'fast-check'
import { IncomingMessage, ServerResponse } from 'node:http'
import t from 'tap'
import { ConfigError, hsts, hostAuthorization, crossSite, lastForwardedElement, loadConfig, proxyTrust, resolveConfig, serverOptions } from '../index.ts'
import { parseHost } from '../schemas/host-authorization.ts'
import { publicInternetRange } from '../schemas/proxy-trust.ts'
import { growth } from './helpers/linear.ts'

const KEY = Buffer.from('61409024e5938ddf7633d597472adcd53f9fb0e083a433f977e16fb8cdbeedd7', 'hex').toString('base64')
const PRODUCTION = { NODE_ENV: 'production', TLS_MODE: 'proxy', SESSION_KEYS: KEY, ALLOWED_HOSTS: 'example.com' }

function configError (env: Record<string, string>): ConfigError | null {
  try {
    loadConfig(env)
    return null
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
}

t.test('production refuses ranges that cover the public internet', async (t) => {
  for (const trust of ['::ffff:0:0/96', '0.0.0.0/1,128.0.0.0/1', '10.0.0.0/7', '::ffff:0.0.0.0/97', '::/96', '::/64', '64:ff9b::/96', '2000::/3', '2001:db8::/31']) {
    const error = configError({ ...PRODUCTION, TRUST_PROXY: trust })
    t.ok(error?.issues.some((issue) => issue.variable === 'TRUST_PROXY' && /public internet/.test(issue.message)), `TRUST_PROXY=${trust} is refused`)
  }
  for (const trust of ['10.0.0.0/8', '127.0.0.1', 'loopback,uniquelocal,linklocal', 'fc00::/7', 'fe80::/10', '2001:db8::/32', '::ffff:10.0.0.0/104', '::1', '::ffff:127.0.0.1']) {
    t.equal(configError({ ...PRODUCTION, TRUST_PROXY: trust }), null, `TRUST_PROXY=${trust} is accepted`)
  }
  t.equal(configError({ TRUST_PROXY: '::ffff:0:0/96' }), null, 'development accepts wide ranges (as it accepts true)')
  t.match(publicInternetRange('0.0.0.0/1'), /wider than \/8/)
})

t.test('0.0.0.0/0 and ::/0 are a ConfigError, never a TypeError from Fastify()', async (t) => {
  for (const trust of ['0.0.0.0/0', '::/0', '1.2.3.4/00', '::ffff:0:0/0']) {
    for (const env of [{ TRUST_PROXY: trust }, { ...PRODUCTION, TRUST_PROXY: trust }]) {
      const error = configError(env)
      t.ok(error?.issues.some((issue) => issue.variable === 'TRUST_PROXY' && /every address|every peer/.test(issue.message)), `TRUST_PROXY=${trust} (${env === PRODUCTION ? 'production' : 'development'})`)
    }
  }
  t.throws(() => resolveConfig({ proxyTrust: { trust: ['0.0.0.0/0'] } }), ConfigError, 'in code too')
})

t.test('doctor fails a trust that covers the internet', async (t) => {
  const { doctor } = await import('../index.ts')
  const report = await doctor({ ...PRODUCTION, TRUST_PROXY: '0.0.0.0/1,128.0.0.0/1' })
  const check = report.checks.find((c) => c.id === 'SH-PROXY-001')
  t.equal(check?.status, 'fail')
})

t.test('the Forwarded parser follows RFC 7239', async (t) => {
  t.same(lastForwardedElement('for=192.0.2.60;proto=http;by=203.0.113.43'), { for: '192.0.2.60', proto: 'http', by: '203.0.113.43' })
  t.same(lastForwardedElement('for=192.0.2.43, for=198.51.100.17'), { for: '198.51.100.17' })
  t.same(lastForwardedElement('for="[2001:db8:cafe::17]:4711"'), { for: '[2001:db8:cafe::17]:4711' })
  t.same(lastForwardedElement('for=_hidden;by=_SEVKISEK, for="unknown:_p1"'), { for: 'unknown:_p1' }, 'obfuscated identifiers and unknown')
  t.same(lastForwardedElement('for=unknown'), { for: 'unknown' })
  t.same(lastForwardedElement('for="192.0.2.1:8080";host="example.com:8443";proto=HTTPS'), { for: '192.0.2.1:8080', host: 'example.com:8443', proto: 'https' })
  t.same(lastForwardedElement('for=1.2.3.4 ,  , for=5.6.7.8 ; proto=https'), { for: '5.6.7.8', proto: 'https' }, 'whitespace and empty elements')
  for (const bad of [
    'for=[2001:db8::1]', // IPv6 must be quoted
    'for=2001:db8::1',
    'for="[2001:db8::1"',
    'for=1.2.3.4:80', // a port needs quotes
    'for="1.2.3.4:99999"',
    'for=example.com',
    'for=_',
    'host="a b"',
    'host="x", for=10.0.0.1;proto=https;host="example.com', // quote left open
    'proto=1http',
    'for=1.2.3.4;for=5.6.7.8',
    'for=1.2.3.4;proto=https;PROTO=http',
    'for',
    'for=',
    '=1.2.3.4',
    'for="1.2.3.4\u0001"',
    'for=1.2.3.4 x',
    'for="\\'
  ]) t.equal(lastForwardedElement(bad), null, JSON.stringify(bad))
})

const node = fc.oneof(
  fc.ipV4(),
  fc.ipV6().map((ip) => `[${ip}]`),
  fc.constant('unknown'),
  fc.stringMatching(/^_[A-Za-z0-9._-]{1,10}$/)
).chain((name) => fc.option(fc.oneof(fc.integer({ min: 0, max: 65535 }).map(String), fc.stringMatching(/^_[A-Za-z0-9._-]{1,6}$/))).map((port) => port === null ? name : `${name}:${port}`))
const host = fc.tuple(fc.domain(), fc.option(fc.integer({ min: 1, max: 65535 }))).map(([name, port]) => port === null ? name : `${name}:${port}`)
const element = fc.record({ for: node, by: node, host, proto: fc.constantFrom('http', 'https', 'wss') }, { requiredKeys: [] })

function quote (value: string): string {
  return /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`
}

t.test('fuzz: what proxies write parses back to its last element', async (t) => {
  fc.assert(fc.property(fc.array(element, { minLength: 1, maxLength: 5 }), (elements) => {
    const header = elements.map((e) => Object.entries(e).map(([k, v]) => `${k}=${quote(v)}`).join(';')).join(', ')
    const last = [...elements].reverse().find((e) => Object.keys(e).length > 0)
    const parsed = lastForwardedElement(header)
    if (last === undefined) return parsed === null
    return JSON.stringify(parsed) === JSON.stringify({ ...last, ...(last.proto === undefined ? {} : { proto: last.proto }) }) ||
      JSON.stringify(Object.entries(parsed ?? {}).sort()) === JSON.stringify(Object.entries(last).sort())
  }), { numRuns: 500 })
  t.pass('round trip holds')
})

t.test('fuzz: any string: no exception, and anything returned is well formed', async (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (header) => {
    const parsed = lastForwardedElement(header)
    if (parsed === null) return true
    return (parsed.host === undefined || parseHost(parsed.host) !== null) &&
      (parsed.proto === undefined || /^[a-z][a-z0-9+.-]*$/.test(parsed.proto))
  }), { numRuns: 2000 })
  fc.assert(fc.property(fc.array(fc.constantFrom('for=', 'proto=', 'host=', '"', '\\', ',', ';', ' ', '1.2.3.4', '[::1]', '_x', 'https', ':80', '='), { maxLength: 60 }).map((parts) => parts.join('')), (header) => {
    lastForwardedElement(header)
    return true
  }), { numRuns: 2000 })
  t.pass('no input throws')
})

t.test('fuzz: a Host copied into Forwarded by haproxy either is a host or makes the app ignore the header', async (t) => {
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom('x", for=10.0.0.1;proto=https;host="example.com', 'a\\", proto=https, x="')), (clientHost) => {
    const header = `for=203.0.113.9;proto=http;host="${clientHost}"`
    const parsed = lastForwardedElement(header)
    if (parseHost(clientHost) === null) return true // the app drops Forwarded when Host is not a host (tested over haproxy)
    return parsed !== null && parsed.proto === 'http' && parsed.for === '203.0.113.9'
  }), { numRuns: 2000 })
  t.pass()
})

t.test('fuzz: parseHost never throws and returns only clean names', async (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (value) => {
    const name = parseHost(value)
    return name === null || /^([a-z0-9_.-]+|[0-9a-f:.]+)$/.test(name)
  }), { numRuns: 3000 })
  fc.assert(fc.property(fc.domain(), fc.option(fc.integer({ min: 0, max: 65535 })), (domain, port) => parseHost(port === null ? domain : `${domain}:${port}`) === domain.toLowerCase()), { numRuns: 500 })
  t.pass()
})

t.test('fuzz: loadConfig throws nothing but ConfigError, whatever the environment', async (t) => {
  const { environmentVariables } = await import('../index.ts')
  const names = [...Object.keys(environmentVariables), 'NODE_ENV']
  const value = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('0.0.0.0/0', '::/0', '::ffff:0:0/96', 'true', 'false', 'off', '0', '-1', '99999999999999999999', '1e3', 'production', '*', '*.com', '[::1]', 'https://a.test', 'proxy', 'files', 'acme', 'redis'))
  fc.assert(fc.property(fc.dictionary(fc.constantFrom(...names), value, { maxKeys: 8 }), (env) => {
    try {
      loadConfig(env)
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
    }
    return true
  }), { numRuns: 400 })
  t.pass()
})

t.test('cost linear in the length: doubling the header at most doubles the time, over many sizes', async (t) => {
  const shapes: Record<string, (n: number) => string> = {
    'escaped quotes (the reported case)': (n) => '\\"\\"'.repeat(n / 4),
    'quotes only': (n) => '"'.repeat(n),
    'one long quoted value': (n) => `for=_a;ext="${'\\x'.repeat(n / 2)}"`,
    'many parameters': (n) => 'a=b;'.repeat(n / 4),
    'many distinct parameters': (n) => Array.from({ length: n / 8 }, (_, i) => `p${i}=1`).join(';'),
    'many elements': (n) => 'for=1.2.3.4, '.repeat(n / 13),
    commas: (n) => ','.repeat(n)
  }
  for (const [name, make] of Object.entries(shapes)) {
    // Fitted over four lengths with the best batches interleaved (test/helpers/linear.ts), so that
    // other work on the machine cannot fail it; up to 32 KB: at 64 KB, 8,192 distinct parameters
    // make V8 change how it keeps them, a one-time step. The old parser was quadratic: n^2.
    const grown = growth(make, lastForwardedElement, [4096, 8192, 16384, 32768], { rounds: 15, repeat: 10 })
    // A refusal at the first bad character takes constant time, well under 20 us, and is fine as it is.
    const constant = (grown.nanoseconds.at(-1) as number) < 20_000
    t.ok(constant || grown.exponent < 1.5, `${name}: time grows as ${grown.text}`)
    t.ok((grown.nanoseconds[2] as number) < 5_000_000, `${name}: 16 KB parses in well under 5 ms`)
  }
})

t.test('requests without a socket (fastify.routing() with a bare req/res) work with every plugin', async (t) => {
  const config = resolveConfig({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'], forwarded: true }, allowedHosts: ['real.test'] })
  const app = Fastify({ ...(await serverOptions(config)) })
  await app.register(proxyTrust, { trust: ['127.0.0.1'], forwarded: true })
  await app.register(hostAuthorization, { allowedHosts: ['real.test'] })
  await app.register(hsts, { localhost: true })
  await app.register(crossSite)
  app.get('/', async (request) => ({ host: request.host, secure: request.secure, forwarded: request.forwarded }))
  app.post('/', async () => 'posted')
  await app.ready()
  t.teardown(() => app.close())
  const route = (method: string, headers: Record<string, string>): Promise<{ status: number, body: string, headers: Record<string, unknown> }> => {
    const req = new IncomingMessage(null as never)
    req.method = method
    req.url = '/'
    req.headers = headers
    const res = new ServerResponse(req)
    return new Promise((resolve) => {
      const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse
      res.end = ((chunk?: unknown, ...rest: unknown[]) => {
        resolve({ status: res.statusCode, body: String(chunk ?? ''), headers: res.getHeaders() })
        return end(chunk, ...rest)
      }) as typeof res.end
      app.routing(req, res)
    })
  }
  const spoofed = await route('GET', { host: 'real.test', 'x-forwarded-host': 'spoofed.test', 'x-forwarded-proto': 'https', forwarded: 'for=1.2.3.4;proto=https;host=spoofed.test', 'x-forwarded-for': '1.2.3.4' })
  t.equal(spoofed.status, 200, 'no TypeError: the request is answered')
  t.same(JSON.parse(spoofed.body), { host: 'real.test', secure: false, forwarded: null }, 'and nothing forwarded is believed without a peer')
  t.notOk(spoofed.headers['strict-transport-security'], 'no HSTS: the request is not secure')
  t.equal((await route('GET', { host: 'evil.test' })).status, 400, 'host authorization works without a socket')
  t.equal((await route('POST', { host: 'real.test', 'sec-fetch-site': 'cross-site' })).status, 403, 'and so does the cross-site check')
})
