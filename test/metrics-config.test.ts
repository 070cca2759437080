/**
 * METRICS, METRICS_PORT and METRICS_HOST: opt-in, never on the app's port, never on a public address
 * in production, parsed strictly (fuzzed); and the doctor's metrics checks.
 */
import fc from 'fast-check'
import { isIP } from 'node:net'
import t from 'tap'
import { ConfigError, doctor, loadConfig, resolveConfig } from '../index.ts'
import { metricsExposure } from '../schemas/metrics.ts'
import { configErrorOf } from './helpers/config.ts'
import { growth } from './helpers/linear.ts'

// A fixed random key (production refuses patterned ones).
const KEY = Buffer.from('1a08f242e60626677f4bc19b6cbb72c5f8aa589ec68390dc82d976d7c3e25487', 'hex').toString('base64')
/** A production environment that loads (TLS at a proxy), to add the metrics variables to. */
const production = { NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.2', ALLOWED_HOSTS: 'example.com', SESSION_KEYS: KEY }

function metricsOf (env: Record<string, string>): Exclude<ReturnType<typeof loadConfig>['metrics'], false> {
  const { metrics } = loadConfig(env)
  if (metrics === false) throw new Error('metrics are off')
  return metrics
}

const messageOf = (env: Record<string, string>): string => configErrorOf(() => loadConfig(env)).message

t.test('metrics are off unless METRICS=true; then 127.0.0.1:9464 with the process metrics', async (t) => {
  t.equal(loadConfig({}).metrics, false, 'off by default')
  t.equal(loadConfig({ METRICS: 'false' }).metrics, false)
  t.equal(loadConfig({ METRICS_PORT: '9100', METRICS_HOST: '0.0.0.0' }).metrics, false, 'METRICS_PORT and METRICS_HOST alone turn nothing on')
  t.equal(loadConfig({ METRICS: 'false', METRICS_PORT: '9100' }).metrics, false)
  const on = metricsOf({ METRICS: 'true' })
  t.equal(on.port, 9464)
  t.equal(on.host, '127.0.0.1')
  t.equal(on.listener, true)
  t.equal(on.defaultMetrics, true, 'the plugin\'s own registry gets the process metrics')
  t.equal(on.registry, undefined)
  t.ok(Object.isFrozen(on))
  const tuned = metricsOf({ METRICS: 'on', METRICS_PORT: '9100', METRICS_HOST: ' [::1] ' })
  t.equal(tuned.port, 9100)
  t.equal(tuned.host, '::1', 'trimmed, without brackets')
  t.same(resolveConfig(resolveConfig({ metrics: true })), resolveConfig({ metrics: true }), 'a resolved config resolves to itself')
  const code = resolveConfig({ metrics: { port: 9200 } })
  t.equal(code.metrics !== false && code.metrics.port, 9200, 'an options object turns them on in code')
})

t.test('bad values are reported with their variable, all at once, even while METRICS is off', async (t) => {
  const error = configErrorOf(() => loadConfig({ METRICS: 'maybe', METRICS_PORT: 'ninety', METRICS_HOST: 'x' }))
  t.same(error.issues.map((issue) => issue.variable).sort(), ['METRICS', 'METRICS_HOST', 'METRICS_PORT'])
  t.match(error.message, /METRICS: "maybe" is not a boolean/)
  t.match(error.message, /METRICS_PORT: "ninety" is not a port number/)
  const off = configErrorOf(() => loadConfig({ METRICS_PORT: '9x' }))
  t.equal(off.issues[0]?.variable, 'METRICS_PORT', 'a typo is a typo even when METRICS is off')
  t.match(messageOf({ METRICS_PORT: '99999' }), /METRICS_PORT: must be at most 65535/, 'and so is a port out of range')
  t.match(messageOf({ METRICS_HOST: 'metrics.internal' }), /METRICS_HOST: "metrics\.internal" is not an IP address/, 'and a host name')
  t.equal(loadConfig({ METRICS_PORT: '9100', METRICS_HOST: '10.0.0.5' }).metrics, false, 'good values set ahead change nothing')
  const range = configErrorOf(() => loadConfig({ METRICS: 'true', METRICS_PORT: '70000' }))
  t.match(range.message, /METRICS_PORT: must be at most 65535/)
  const name = configErrorOf(() => loadConfig({ METRICS: 'true', METRICS_HOST: 'metrics.internal' }))
  t.match(name.message, /METRICS_HOST: "metrics\.internal" is not an IP address; use 127\.0\.0\.1 .* a host name is refused because it is resolved only when the listener starts/)
  const registry = configErrorOf(() => resolveConfig({ metrics: { registry: {} as never } }))
  t.match(registry.message, /metrics\.registry: must be a prom-client Registry/)
  const unknown = configErrorOf(() => resolveConfig({ metrics: { prot: 1 } as never }))
  t.match(unknown.message, /unknown option "prot"/)
})

t.test('METRICS_PORT may not be the app\'s PORT or HTTP_PORT', async (t) => {
  const onPort = configErrorOf(() => loadConfig({ METRICS: 'true', PORT: '9464' }))
  t.equal(onPort.issues.length, 1)
  t.equal(onPort.issues[0]?.variable, 'METRICS_PORT')
  t.match(onPort.message, /METRICS_PORT: is 9464, a port of the app \(PORT or HTTP_PORT\): metrics are never served where the public connects; choose a port of their own/)
  const onRedirect = configErrorOf(() => loadConfig({ METRICS: 'true', METRICS_PORT: '8080' }))
  t.equal(onRedirect.issues[0]?.variable, 'METRICS_PORT', 'the development HTTP_PORT 8080 too')
  const behindProxy = configErrorOf(() => loadConfig({ ...production, METRICS: 'true', METRICS_PORT: '3000' }))
  t.equal(behindProxy.issues[0]?.variable, 'METRICS_PORT', 'and the app\'s port behind a proxy')
  t.ok(loadConfig({ METRICS: 'true', METRICS_PORT: '8080', HTTP_PORT: 'off' }).metrics, 'a port the app does not use is fine')
  t.ok(resolveConfig({ port: 0, metrics: { port: 0 } }).metrics, 'port 0 (any free port) never collides')
  t.ok(resolveConfig({ port: 9464, metrics: { port: 9464, listener: false } }).metrics, 'no listener, no port to collide')
})

t.test('in production a public METRICS_HOST is refused; loopback, private and all-interfaces are not', async (t) => {
  const error = configErrorOf(() => loadConfig({ ...production, METRICS: 'true', METRICS_HOST: '203.0.113.7' }))
  t.equal(error.issues.length, 1)
  t.equal(error.issues[0]?.variable, 'METRICS_HOST')
  t.match(error.message, /METRICS_HOST: is 203\.0\.113\.7, a public address: in production the metrics .* are not served to the internet; use 127\.0\.0\.1/)
  t.equal(configErrorOf(() => loadConfig({ ...production, METRICS: 'true', METRICS_HOST: '2001:db8::5' })).issues[0]?.variable, 'METRICS_HOST')
  for (const host of ['127.0.0.1', '::1', 'localhost', '10.1.2.3', '192.168.0.10', 'fd00::5', '0.0.0.0', '::']) {
    t.equal(metricsOf({ ...production, METRICS: 'true', METRICS_HOST: host }).host, host, `${host} is accepted`)
  }
  t.equal(metricsOf({ METRICS: 'true', METRICS_HOST: '203.0.113.7' }).host, '203.0.113.7', 'development does not refuse it')
  t.ok(resolveConfig({ production: true, tls: { mode: 'proxy' }, proxyTrust: { trust: ['10.0.0.2'] }, allowedHosts: ['example.com'], secureSession: { keys: [KEY] }, metrics: { host: '203.0.113.7', listener: false } }).metrics,
    'without a listener there is nothing to expose')
})

t.test('where an address exposes the metrics', async (t) => {
  const cases: Array<[string, string]> = [
    ['127.0.0.1', 'loopback'], ['127.8.9.10', 'loopback'], ['::1', 'loopback'], ['localhost', 'loopback'], ['::ffff:127.0.0.1', 'loopback'],
    ['10.0.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'], ['100.64.0.1', 'private'], ['169.254.1.1', 'private'],
    ['fd12::1', 'private'], ['fe80::1%eth0', 'private'],
    ['0.0.0.0', 'all-interfaces'], ['::', 'all-interfaces'], ['0:0:0:0:0:0:0:0', 'all-interfaces'],
    ['172.32.0.1', 'public'], ['8.8.8.8', 'public'], ['2001:db8::1', 'public'], ['::ffff:8.8.8.8', 'public'], ['not-an-ip', 'public']
  ]
  for (const [host, exposure] of cases) t.equal(metricsExposure(host), exposure, host)
})

t.test('fuzz: any METRICS_PORT and METRICS_HOST give a config or a ConfigError naming them, never anything else', async (t) => {
  const hostish = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.ipV4(), fc.ipV6(), fc.domain(),
    fc.tuple(fc.constantFrom(' ', '[', ''), fc.ipV6(), fc.constantFrom(' ', ']', '%eth0', '')).map((parts) => parts.join(''))
  )
  const portish = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -10, max: 70000 }).map(String))
  fc.assert(fc.property(hostish, portish, fc.boolean(), (host, port, inProduction) => {
    const env = { ...(inProduction ? production : {}), METRICS: 'true', METRICS_HOST: host, METRICS_PORT: port }
    try {
      const metrics = metricsOf(env)
      if (!Number.isInteger(metrics.port) || metrics.port < 0 || metrics.port > 65535) return false
      if (inProduction && metricsExposure(metrics.host) === 'public') return false
      // What is accepted is what listen() takes as an address, never a name to resolve.
      return metrics.host === 'localhost' || isIP(metrics.host.replace(/%[a-z0-9_.-]+$/, '')) !== 0
    } catch (error) {
      if (!(error instanceof ConfigError)) return false
      return error.issues.every((issue) => issue.variable === 'METRICS_HOST' || issue.variable === 'METRICS_PORT')
    }
  }), { numRuns: 2000 })
  t.pass('2000 environments: a config or a ConfigError naming METRICS_HOST or METRICS_PORT')
})

t.test('a long METRICS_HOST is refused in time linear in its length', async (t) => {
  // Inputs shaped to make a backtracking pattern work hard: brackets, colons, percent signs.
  const shapes = [(n: number) => `[${':'.repeat(n)}`, (n: number) => `${'1.'.repeat(n)}%`, (n: number) => `fe80::1%${'a'.repeat(n)}`, (n: number) => ' '.repeat(n) + 'x']
  for (const shape of shapes) {
    // Up to the longest value read (256 characters), each is trimmed, lower-cased and matched.
    const short = growth((n) => ({ METRICS: 'true', METRICS_HOST: shape(n).slice(0, 256) }), (env) => {
      try { loadConfig(env) } catch { /* refused */ }
    }, [32, 64, 128, 250], { rounds: 9, repeat: 4 })
    t.ok(short.exponent < 1.5, `${shape(3)}... up to 256 characters: ${short.text}`)
    // Beyond, refused on its length alone: no copy of a value of megabytes is made (V8 keeps each
    // copy of a string over 128 KB in a mapping of its own, a cost that made this fit flaky).
    // (An environment variable is trimmed first, in time linear in its spaces: the last shape's
    // value is then "x", refused as no address.)
    const refusal = shape === shapes[3] ? /METRICS_HOST: "x" is not an IP address/ : /METRICS_HOST: is \d+ characters long, more than an IP address can be \(at most 256\)/
    t.throws(() => loadConfig({ METRICS: 'true', METRICS_HOST: shape(100_000) }), refusal, `${shape(3)}... is refused`)
    const long = growth((n) => ({ METRICS: 'true', METRICS_HOST: shape(n) }), (env) => {
      try { loadConfig(env) } catch { /* refused, as checked above */ }
    }, [150_000, 300_000, 600_000, 1_200_000], { rounds: 9, repeat: 2 })
    t.ok(long.exponent < 1.5, `${shape(3)}...: ${long.text}`)
  }
})

t.test('METRICS_HOST: up to 256 characters are read, 257 refused on their length', async (t) => {
  t.throws(() => loadConfig({ METRICS: 'true', METRICS_HOST: 'x'.repeat(256) }), /METRICS_HOST: "x{100}" is not an IP address/, '256: read, and refused as no address')
  t.throws(() => loadConfig({ METRICS: 'true', METRICS_HOST: 'x'.repeat(257) }), /METRICS_HOST: is 257 characters long, more than an IP address can be \(at most 256\); use 127\.0\.0\.1/, '257: refused on its length, saying what to set')
  t.throws(() => loadConfig({ METRICS_HOST: 'x'.repeat(5000) }), /METRICS_HOST: is 5000 characters long/, 'also while METRICS is off, as every METRICS_HOST is checked')
  // In options, where nothing trims before the schema: spaces around an address count, and are trimmed.
  const padded = ' '.repeat(256 - '127.0.0.1'.length) + '127.0.0.1'
  const config = resolveConfig({ metrics: { host: padded } })
  t.equal(config.metrics === false ? null : config.metrics.host, '127.0.0.1', 'an address padded to 256 characters is read')
  t.throws(() => resolveConfig({ metrics: { host: ' ' + padded } }), /metrics\.host: is 257 characters long/, 'padded to 257, refused')
})

t.test('doctor: SH-METRICS-001 mentions metrics when production runs without them; SH-METRICS-002 their exposure', async (t) => {
  const status = async (env: Record<string, string>, id: string): Promise<[string | undefined, string | undefined]> => {
    const check = (await doctor(env)).checks.find((c) => c.id === id)
    return [check?.status, check?.message]
  }
  const [off, offMessage] = await status(production, 'SH-METRICS-001')
  t.equal(off, 'fail')
  t.match(offMessage, /METRICS is off: certificate expiry, failed renewals, tampered cookies and session store outages are only in the log/)
  const report = await doctor(production)
  t.equal(report.checks.find((c) => c.id === 'SH-METRICS-001')?.severity, 'info', 'an info-level note: it does not fail the audit')
  t.equal(report.errors, 0)
  t.same(await status({ ...production, METRICS: 'true' }, 'SH-METRICS-001'), ['pass', 'METRICS=true: http://127.0.0.1:9464/metrics'])
  t.equal((await status(production, 'SH-METRICS-002'))[0], 'skip')
  t.equal((await status({ ...production, METRICS: 'true' }, 'SH-METRICS-002'))[0], 'pass')
  const [wide, wideMessage] = await status({ ...production, METRICS: 'true', METRICS_HOST: '0.0.0.0' }, 'SH-METRICS-002')
  t.equal(wide, 'fail')
  t.match(wideMessage, /METRICS_HOST=0\.0\.0\.0: the metrics are reachable from every network this host is on/)
  t.match((await status({ ...production, METRICS: 'true', METRICS_HOST: '10.0.0.5' }, 'SH-METRICS-002'))[1], /the private network of that address/)
  const [publicHost, publicMessage] = await status({ ...production, METRICS: 'true', METRICS_HOST: '203.0.113.7' }, 'SH-METRICS-002')
  t.equal(publicHost, 'fail', 'the refused public address is reported under the same id')
  t.match(publicMessage, /METRICS_HOST: is 203\.0\.113\.7, a public address/)
})
