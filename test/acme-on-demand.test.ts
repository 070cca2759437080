/**
 * On-demand TLS (ACME_ON_DEMAND_ASK): a certificate for a name nobody configured, at its first
 * handshake, only when the ask check allows it. The guards on their own (name syntax fuzzed and
 * timed, the ask gate, the order limit), then against a real pebble over real TLS: a refused name
 * gets no certificate and no order, an allowed one is served within seconds, the rate limit holds,
 * and a restart serves what was obtained.
 */
import fc from 'fast-check'
import { X509Certificate } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { connect } from 'node:tls'
import t from 'tap'
import { loadConfig, resolveConfig } from '../index.ts'
import { isHostname } from '../schemas/common.ts'
import { AskGate, onDemandName, OrderLimiter } from '../tls/on-demand.ts'
import { tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { startInstance, type Instance } from './helpers/fleet.ts'
import { request } from './helpers/http.ts'
import { acmeOptions, startPebble } from './helpers/pebble.ts'
import { growth } from './helpers/linear.ts'

t.test('on-demand names: strict syntax, fuzzed, linear', async (t) => {
  t.equal(onDemandName('Shop.Example.COM.'), 'shop.example.com', 'lower-cased, without the trailing dot')
  for (const bad of ['', 'localhost', 'a_b.example', '*.example.com', '1.2.3.4', '::1', 'example..com', '-a.example', 'a-.example', 'x.123', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}com`, 'é.example', 'a b.example', 'a\0.example']) {
    t.equal(onDemandName(bad), null, JSON.stringify(bad.slice(0, 30)))
  }
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (input) => {
    const name = onDemandName(input)
    return name === null || (isHostname(name) && name === name.toLowerCase() && name.length <= 253 && name.includes('.'))
  }), { numRuns: 5000 })
  fc.assert(fc.property(fc.domain(), (domain) => {
    const name = onDemandName(domain)
    return name === null || name === domain.toLowerCase()
  }), { numRuns: 2000 })
  for (const [label, shape] of [['labels', (n: number) => `${'a.'.repeat(n / 2)}-`], ['one label', (n: number) => `${'a'.repeat(n)}.-`]] as const) {
    // Linear work fits an exponent near 1; a quadratic check would fit 2 (the margin is for GC).
    const grown = growth(shape, onDemandName, [32, 64, 128, 250])
    t.ok(grown.exponent < 1.5, `${label}: time grows as ${grown.text}`)
  }
})

t.test('the ask gate: one check per name at a time, refusals remembered, a cap on checks in flight', async (t) => {
  let now = 0
  const asked: string[] = []
  const answers = new Map<string, (yes: boolean) => void>()
  const gate = new AskGate({
    ask: (name) => new Promise<boolean>((resolve) => { asked.push(name); answers.set(name, resolve) }),
    timeoutMs: 60_000,
    maxInFlight: 2,
    refusedFor: 1000,
    now: () => now
  })
  const first = gate.allows('a.example')
  const second = gate.allows('a.example')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(asked, ['a.example'], 'two handshakes for one name: one check')
  const other = gate.allows('b.example')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(await gate.allows('c.example'), 'busy', 'a third name while two checks run is refused for now, unasked')
  answers.get('a.example')?.(true)
  answers.get('b.example')?.(false)
  t.same([await first, await second, await other], [true, true, 'denied'])
  t.equal(await gate.allows('b.example'), 'denied', 'a refusal is remembered')
  t.same(asked, ['a.example', 'b.example'], 'without asking again')
  now = 2000
  const again = gate.allows('b.example')
  await new Promise((resolve) => setImmediate(resolve))
  answers.get('b.example')?.(true)
  t.equal(await again, true, 'and asked again once it is forgotten')
  const slow = new AskGate({ ask: () => new Promise<boolean>(() => {}), timeoutMs: 50 })
  t.equal(await slow.allows('slow.example'), 'denied', 'a check that does not answer in time is a no')
  const throwing = new AskGate({ ask: () => { throw new Error('boom') }, timeoutMs: 50 })
  t.equal(await throwing.allows('x.example'), 'denied', 'nor one that fails')
})

t.test('the order limit', async (t) => {
  let now = 0
  const limiter = new OrderLimiter(2, 60_000, () => now)
  t.same([limiter.take(), limiter.take(), limiter.take()], [true, true, false])
  t.equal(limiter.nextIn(), 60_000)
  now = 60_000
  t.equal(limiter.take(), true, 'a new order once the first leaves the window')
})

t.test('configuration', async (t) => {
  const base = { TLS_MODE: 'acme', ACME_EMAIL: 'a@a.test', ACME_AGREE_TOS: 'true' }
  const config = loadConfig({ ...base, ACME_ON_DEMAND_ASK: 'https://admin.example.com/allowed' })
  t.equal(config.tls === false ? null : config.tls.acme.onDemand?.ask, 'https://admin.example.com/allowed', 'ACME_DOMAINS may be empty with on-demand TLS')
  t.same(config.tls === false ? null : { ...config.tls.acme.onDemand, ask: undefined }, { ask: undefined, askTimeout: 5, maxOrders: 10, per: 1200, wait: 10 }, 'defaults')
  const onDemand = config.tls === false ? null : config.tls.acme.onDemand
  t.ok(onDemand !== null && onDemand !== undefined && onDemand.maxOrders * (3 * 3600 / onDemand.per) <= 300 / 3,
    'the defaults start at most a third of Let\'s Encrypt\'s 300 new orders per account per 3 hours')
  t.ok(loadConfig({ ...base, ACME_ON_DEMAND_ASK: 'http://127.0.0.1:5555/check' }), 'http:// on loopback')
  for (const bad of ['http://admin.example.com/allowed', 'https://user:pw@admin.example.com/', 'ftp://x/', 'not a url']) {
    t.throws(() => loadConfig({ ...base, ACME_ON_DEMAND_ASK: bad }), /ACME_ON_DEMAND_ASK: .* is not an ask URL; use https:\/\/host\/path \(http:\/\/ only on localhost/, bad)
  }
  t.throws(() => loadConfig({ ...base }), /ACME_DOMAINS: is required with TLS_MODE=acme/, 'without on-demand, names are required')
  const inCode = resolveConfig({ tls: { mode: 'acme', acme: { email: 'a@a.test', agreeTos: true, onDemand: { ask: (name: string) => name.endsWith('.example.com'), maxOrders: 3 } } } })
  t.type(inCode.tls === false ? null : inCode.tls.acme.onDemand?.ask, 'function', 'a function in code')
})

/** What a TLS handshake for `servername` gets: the certificate, or the error. */
function handshake (port: number, servername: string): Promise<{ cert: X509Certificate } | { error: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw
      resolve({ cert: new X509Certificate(raw) })
      socket.end()
    })
    socket.setTimeout(20_000, () => socket.destroy(new Error('handshake timed out')))
    socket.on('error', (error) => resolve({ error: error.message }))
  })
}

t.test('on demand against pebble', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble()
  t.teardown(() => pebble.close())
  const allowed = new Set(['shop.test', 'two.test', 'three.test'])
  const asked: string[] = []
  const ask: Server = createServer((req, res) => {
    const name = new URL(req.url ?? '/', 'http://x').searchParams.get('domain') ?? ''
    asked.push(name)
    res.writeHead(allowed.has(name) ? 200 : 404).end()
  })
  await new Promise<void>((resolve) => ask.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => ask.close(() => resolve())))
  const askUrl = `http://127.0.0.1:${(ask.address() as { port: number }).port}/allowed`
  const dir = tempDir(undefined, t)
  const options = acmeOptions(pebble, dir, ['main.test'], pebble.httpPort, { onDemand: { ask: askUrl, maxOrders: 2, per: 60, wait: 15 } })
  const s: Instance = await startInstance(options, 0, (app) => { app.get('/', async () => 'hello') })
  t.teardown(() => s.close())
  // The configured name's own certificate first: it is the default from then on.
  await s.logs.waitFor((line) => line.msg === 'TLS certificate reloaded' && line.certificate === 'main.test', 15_000)
  const announced: string[] = []
  s.app.tls.onNameAllowed((name) => announced.push(name))
  const orders = (name: string): number => s.logs.lines.filter((line) => String(line.msg).startsWith('ACME: ordering') && line.certificate === name).length

  t.test('a name the ask check refuses gets no certificate and no order', async (t) => {
    const before = await request(`https://127.0.0.1:${s.port}/`, { insecure: true, servername: 'main.test', headers: { host: 'shop.test' } })
    t.equal(before.status, 400, 'host authorization refuses a name nobody allowed yet')
    const refused = await handshake(s.port, 'denied.test')
    t.ok('error' in refused, 'the handshake fails: no certificate for it')
    t.same(asked, ['denied.test'], 'the ask URL was called with ?domain=')
    t.equal(orders('denied.test'), 0, 'no order')
    const again = await handshake(s.port, 'denied.test')
    t.ok('error' in again)
    t.same(asked, ['denied.test'], 'a repeated refused name is not asked again at once')
    const event = await s.logs.waitFor((line) => line.securityEvent === 'acme.on-demand-refused' && line.name === 'denied.test')
    t.equal(event.reason, 'denied')
    const fallback = s.app.tls.status().fingerprint
    for (const other of ['under_score.test', 'localhost']) {
      const result = await handshake(s.port, other)
      t.equal('cert' in result ? result.cert.fingerprint256 : result.error, fallback, `${other}: not a name a CA could certify, so the default certificate, as without on-demand TLS`)
    }
    t.same(asked, ['denied.test'], 'and never asked about')
    t.same([...s.app.tls.onDemandNames()], [])
  })

  t.test('a name it allows is served within seconds, and host authorization hears of it', async (t) => {
    const started = Date.now()
    const result = await handshake(s.port, 'shop.test')
    const took = Date.now() - started
    if (!('cert' in result)) throw new Error(`no certificate: ${result.error}`)
    const { intermediate, root } = await pebble.issuers()
    t.ok(result.cert.checkIssued(new X509Certificate(intermediate)), `the first handshake gets pebble's certificate, after ${took} ms`)
    t.match(result.cert.subjectAltName, /DNS:shop\.test/)
    t.ok(took < 15_000)
    t.equal(orders('shop.test'), 1)
    t.ok(s.app.tls.onDemandNames().has('shop.test'), 'fastify.tls.onDemandNames() has it')
    t.same(announced, ['shop.test'], 'onNameAllowed listeners are told')
    const verified = await request(`https://127.0.0.1:${s.port}/`, { ca: root, servername: 'shop.test', headers: { host: 'shop.test' } })
    t.equal(verified.status, 200, 'a client trusting pebble\'s root connects, with host name checks, and host authorization lets the name through')
    t.equal(verified.body, 'hello')
    t.ok(s.app.hostAuthorization.isAllowed('shop.test:443'))
    const entry = s.app.tls.status().certificates.find((c) => c.name === 'shop.test')
    t.equal(entry?.onDemand, true, 'status() lists it as on demand')
    t.equal((await handshake(s.port, 'main.test') as { cert: X509Certificate }).cert.subjectAltName, 'DNS:main.test', 'the configured name keeps its own')
  })

  t.test('the rate limit holds', async (t) => {
    const second = await handshake(s.port, 'two.test')
    t.ok('cert' in second, 'the second order of the minute goes through')
    const third = await handshake(s.port, 'three.test')
    t.ok('error' in third, 'the third is refused: two orders a minute')
    t.equal(orders('three.test'), 0, 'and not ordered')
    const event = await s.logs.waitFor((line) => line.securityEvent === 'acme.on-demand-refused' && line.name === 'three.test')
    t.equal(event.reason, 'rate-limit')
    t.equal(s.logs.lines.filter(ordering).length, 3, 'main.test, shop.test and two.test: three orders in all')
  })

  t.test('a restart serves what was obtained on demand at once', async (t) => {
    const restarted = await startInstance(acmeOptions(pebble, dir, ['main.test'], 0, { onDemand: { ask: askUrl, maxOrders: 2, per: 60 } }))
    t.teardown(() => restarted.close())
    const before = asked.length
    const result = await handshake(restarted.port, 'shop.test')
    t.ok('cert' in result && !result.cert.checkIssued(result.cert), 'the stored certificate, not a temporary one')
    t.equal(asked.length, before, 'without asking again')
    t.equal(restarted.logs.lines.filter(ordering).length, 0, 'or ordering')
    t.ok(restarted.app.tls.onDemandNames().has('shop.test'))
  })
})

function ordering (line: { msg?: unknown }): boolean {
  return String(line.msg).startsWith('ACME: ordering')
}
