/**
 * When to renew: a fraction of the lifetime with jitter, or the CA's window (ACME Renewal
 * Information, RFC 9773). Pebble 2.4 has no ARI (its path is in acme.test.ts and
 * acme-renewal.test.ts); here a small fake ACME server over real HTTPS offers `renewalInfo` and
 * answers for a stored certificate: the source renews inside the window it suggests, orders at
 * once when the window has opened, and names the certificate it replaces in its new order.
 */
import fc from 'fast-check'
import { createServer, type Server } from 'node:https'
import { randomBytes } from 'node:crypto'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { resolveConfig } from '../index.ts'
import { ariCertId, parseRenewalInfo, renewalTime, timeInWindow } from '../tls/acme-renewal.ts'
import { scaledWarningDays } from '../tls/source.ts'
import { acmeSource, type AcmeEvent } from '../tls/acme-source.ts'
import { AcmeStore } from '../tls/acme-store.ts'
import { createPki } from './helpers/certs.ts'
import { tempDir } from './helpers/app.ts'

const DAY = 86_400_000

t.test('renewal by lifetime: two thirds, earlier by the jitter, never later', async (t) => {
  const notBefore = new Date('2026-01-01T00:00:00Z')
  const notAfter = new Date('2026-04-01T00:00:00Z') // 90 days
  t.equal(renewalTime({ notBefore, notAfter }, 1 / 3).toISOString(), '2026-03-02T00:00:00.000Z', 'day 60 of 90 without jitter')
  t.equal(renewalTime({ notBefore, notAfter }, 1 / 3, 0.02, 1).toISOString(), '2026-02-28T04:48:00.000Z', 'at most 2% of the lifetime (1.8 days) earlier')
  fc.assert(fc.property(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 0.5, noNaN: true }), (random, jitter) => {
    const at = renewalTime({ notBefore, notAfter }, 1 / 3, jitter, random).getTime()
    return at <= Date.parse('2026-03-02T00:00:00Z') && at >= Date.parse('2026-03-02T00:00:00Z') - jitter * 90 * DAY - 1
  }))
  const short = { notBefore, notAfter: new Date(notBefore.getTime() + 6 * DAY) }
  t.equal(renewalTime(short, 1 / 3).getTime() - notBefore.getTime(), 4 * DAY, 'a 6-day certificate at day 4')
  t.same(scaledWarningDays([7, 30], short, 1 / 3).map((days) => Number(days.toFixed(2))), [0.47, 2], 'its expiry warnings at 11 hours and 2 days left, after the renewal point')
  t.same(scaledWarningDays([7, 30], { notBefore, notAfter }, 1 / 3), [7, 30], 'a 90-day certificate keeps 7 and 30')
})

t.test('renewal information: strict parsing (fuzzed), a uniform time in the window, the certificate id', async (t) => {
  const window = { suggestedWindow: { start: '2026-03-01T00:00:00Z', end: '2026-03-03T00:00:00Z' }, explanationURL: 'https://ca.example/why' }
  t.same(parseRenewalInfo(window), { window: { start: new Date('2026-03-01T00:00:00Z'), end: new Date('2026-03-03T00:00:00Z') }, explanationUrl: 'https://ca.example/why' })
  for (const bad of [null, [], 'x', {}, { suggestedWindow: null }, { suggestedWindow: { start: '2026-03-03T00:00:00Z', end: '2026-03-01T00:00:00Z' } },
    { suggestedWindow: { start: 'yesterday', end: '2026-03-01T00:00:00Z' } }, { suggestedWindow: { start: 1, end: 2 } }]) {
    t.equal(parseRenewalInfo(bad), null, `refused: ${JSON.stringify(bad)}`)
  }
  t.equal(parseRenewalInfo({ ...window, explanationURL: 'javascript:alert(1)' })?.explanationUrl, null, 'an explanation URL that is not https is dropped')
  fc.assert(fc.property(fc.anything(), (body) => {
    const parsed = parseRenewalInfo(body)
    return parsed === null || parsed.window.end.getTime() > parsed.window.start.getTime()
  }), { numRuns: 3000 })
  fc.assert(fc.property(fc.record({ suggestedWindow: fc.record({ start: fc.string(), end: fc.string() }) }), (body) => {
    const parsed = parseRenewalInfo(body)
    return parsed === null || parsed.window.end.getTime() > parsed.window.start.getTime()
  }), { numRuns: 3000 })
  const at = (random: number): string => timeInWindow({ start: new Date('2026-03-01T00:00:00Z'), end: new Date('2026-03-03T00:00:00Z') }, random).toISOString()
  t.same([at(0), at(0.5)], ['2026-03-01T00:00:00.000Z', '2026-03-02T00:00:00.000Z'])
  t.ok(at(1) < '2026-03-03T00:00:00.000Z', 'always before the end')

  // RFC 9773 section 4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4, serial 00:87:65:43:21.
  const keys = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0087654321',
    subject: 'CN=example.com',
    issuer: 'CN=issuer',
    notBefore: new Date(),
    notAfter: new Date(Date.now() + DAY),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: [new x509.AuthorityKeyIdentifierExtension('69885b6b87464041e1b37b847ba0ae2cde01c8d4')]
  })
  t.equal(ariCertId(cert.toString('pem')), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE', 'the example of RFC 9773')
})

/** A fake ACME CA: a directory with renewalInfo, nonces, accounts, and orders it refuses after reading them. */
async function fakeCa (tls: { key: string, cert: string }): Promise<{ url: string, window: { start: string, end: string }, asked: string[], orders: Array<Record<string, unknown>>, server: Server }> {
  const state = { url: '', window: { start: '', end: '' }, asked: [] as string[], orders: [] as Array<Record<string, unknown>>, server: null as unknown as Server }
  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const path = new URL(req.url ?? '/', state.url).pathname
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const nonce = randomBytes(8).toString('base64url')
      const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
        res.writeHead(status, { 'content-type': 'application/json', 'replay-nonce': nonce, ...headers }).end(JSON.stringify(body))
      }
      if (path === '/dir') {
        json(200, { newNonce: `${state.url}/nonce`, newAccount: `${state.url}/account`, newOrder: `${state.url}/order`, renewalInfo: `${state.url}/ari/` })
      } else if (path === '/nonce') {
        res.writeHead(200, { 'replay-nonce': nonce }).end()
      } else if (path === '/account') {
        json(201, { status: 'valid' }, { location: `${state.url}/account/1` })
      } else if (path === '/order') {
        const jws = JSON.parse(Buffer.concat(chunks).toString()) as { payload: string }
        state.orders.push(JSON.parse(Buffer.from(jws.payload, 'base64url').toString()) as Record<string, unknown>)
        json(403, { type: 'urn:ietf:params:acme:error:unauthorized', detail: 'a fake CA issues nothing' })
      } else if (path.startsWith('/ari/')) {
        state.asked.push(path.slice(5))
        json(200, { suggestedWindow: state.window }, { 'retry-after': '1' })
      } else {
        json(404, { type: 'urn:ietf:params:acme:error:malformed' })
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.url = `https://127.0.0.1:${(server.address() as { port: number }).port}`
  state.server = server
  return state
}

t.test('a CA that offers renewal information', async (t) => {
  const pki = await createPki()
  const serverLeaf = await pki.leaf({ hosts: ['127.0.0.1'] })
  const ca = await fakeCa({ key: serverLeaf.key, cert: serverLeaf.fullchain })
  t.teardown(() => new Promise<void>((resolve) => ca.server.close(() => resolve())))
  const dir = tempDir(undefined, t)
  writeFileSync(join(dir, 'ca.pem'), pki.root.cert)
  const config = resolveConfig({ tls: { mode: 'acme', dir, acme: { domains: ['ari.test'], email: 'a@a.test', agreeTos: true, directory: `${ca.url}/dir`, caFile: join(dir, 'ca.pem'), retryDelay: 60 } } }).tls
  if (config === false) throw new Error('no tls')
  // A certificate stored earlier, 2 days into its 90: by its lifetime, due in 58 days.
  const stored = await pki.leaf({ hosts: ['ari.test'], notBefore: new Date(Date.now() - 2 * DAY), notAfter: new Date(Date.now() + 88 * DAY) })
  await new AcmeStore(dir, config.acme.directory).writeCertificate('ari.test', { names: ['ari.test'], onDemand: false }, stored.key, stored.fullchain)
  const id = ariCertId(stored.cert)

  const events: AcmeEvent[] = []
  const source = acmeSource(config, { onEvent: (event) => events.push(event), random: () => 0.5 })
  t.teardown(() => source.stop())
  t.equal((await source.load()).info.fingerprint, stored.fingerprint, 'the stored certificate serves')

  const start = new Date(Date.now() + 10 * DAY)
  ca.window = { start: start.toISOString(), end: new Date(start.getTime() + 2 * DAY).toISOString() }
  source.start({ update: () => {}, error: () => {} })
  await source.renew()
  t.same(ca.asked, [id], 'the CA was asked about the certificate by its ARI id')
  const checked = events.find((event) => event.type === 'checked')
  t.ok(checked !== undefined && checked.type === 'checked' && checked.ari, 'not due: the CA\'s window decides')
  if (checked?.type === 'checked') {
    t.equal(checked.renewAt.toISOString(), new Date(start.getTime() + DAY).toISOString(), 'renewal at the chosen point of the window (the middle, here), not at two thirds of the lifetime')
  }
  t.ok(events.some((event) => event.type === 'renewal-info'), 'the window is reported')
  t.same(ca.orders, [], 'no order')

  // The CA moves the window into the past (a revocation, an incident): renew now, saying which certificate it replaces.
  ca.window = { start: new Date(Date.now() - DAY).toISOString(), end: new Date(Date.now() - 1000).toISOString() }
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && ca.asked.length < 2) {
    // The CA said Retry-After: 1; the next check asks again after it.
    await new Promise((resolve) => setTimeout(resolve, 100))
    await source.renew()
  }
  const ordering = events.find((event) => event.type === 'ordering')
  t.match(ordering?.type === 'ordering' ? ordering.reason : '', /the CA's renewal window \(ARI\) has opened/)
  t.equal(ca.orders.length, 1, 'an order at once')
  t.equal(ca.orders[0]?.replaces, id, 'naming the certificate it replaces (RFC 9773 section 5)')
  t.same(ca.orders[0]?.identifiers, [{ type: 'dns', value: 'ari.test' }])
  const failed = events.find((event) => event.type === 'order-failed')
  t.equal(failed?.type === 'order-failed' ? failed.problem?.type : null, 'urn:ietf:params:acme:error:unauthorized', 'the fake CA refuses it; the stored certificate keeps serving')
})
