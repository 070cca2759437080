import Fastify from 'fastify'
import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { secureHttps, serverOptions, tls as tlsPlugin, proxyTrust } from '../index.ts'
import { inspectCertificate } from '../tls/inspect.ts'
import { generateSelfSigned, loadOrCreateSelfSigned, staleReason } from '../tls/self-signed.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { request } from './helpers/http.ts'

t.test('the development certificate: ECDSA P-256, the right SANs, served over TLS, reused across restarts', async (t) => {
  const dir = tempDir(undefined, t)
  const first = await startApp({ tls: { dir }, allowedHosts: ['localhost', 'app.test'] }, (app) => { app.get('/', async () => 'one') })
  const served = await request(`${first.url}/`, { ca: first.cert as string })
  t.equal(served.body, 'one')
  const peer = served.tls?.certificate
  t.ok(peer, 'a certificate was presented')
  t.equal(peer?.asn1Curve, 'prime256v1', 'ECDSA P-256')
  t.equal(peer?.bits, 256)
  t.same(peer?.subjectaltname?.split(', ').sort(), ['DNS:app.test', 'DNS:localhost', 'IP Address:0:0:0:0:0:0:0:1', 'IP Address:127.0.0.1'].sort())
  const status = first.app.tls.status()
  t.equal(status.mode, 'self-signed')
  t.equal(status.fingerprint, peer?.fingerprint256, 'fastify.tls.status() reports the certificate being served')
  t.equal(status.keyType, 'ec P-256')
  t.notOk(status.selfSigned, 'issued by the development CA, not self-signed')
  t.match(status.issuer, /CN=fastify-secure-https development CA/)
  t.ok(status.notAfter.getTime() > Date.now() + 60 * 86_400_000, 'valid for the next 60 days')
  const keyMode = statSync(join(dir, 'self-signed', 'key.pem')).mode & 0o777
  t.equal(keyMode, 0o600, 'the key file is readable by its owner only')
  await first.close()

  const second = await startApp({ tls: { dir }, allowedHosts: ['localhost', 'app.test'] }, (app) => { app.get('/', async () => 'two') })
  const again = await request(`${second.url}/`, { ca: first.cert as string })
  t.equal(again.body, 'two', 'the restarted server is trusted with the first certificate')
  t.equal(again.tls?.certificate.fingerprint256, peer?.fingerprint256, 'the same certificate after a restart')
  await second.close()

  const third = await startApp({ tls: { dir }, allowedHosts: ['localhost', 'other.test'] })
  t.not(third.app.tls.status().fingerprint, peer?.fingerprint256, 'a new certificate when the names change')
  t.ok(third.app.tls.status().sans.includes('other.test'))
  await third.close()
})

t.test('generation is fast and the cache is checked', async (t) => {
  const started = performance.now()
  const pair = await generateSelfSigned(['app.test'])
  const elapsed = performance.now() - started
  t.ok(elapsed < 1000, `generated in ${elapsed.toFixed(1)} ms`)
  t.equal(inspectCertificate(pair.cert).keyType, 'ec P-256')
  t.ok(inspectCertificate(pair.cert).selfSigned, 'generateSelfSigned still makes a standalone self-signed pair, for tests and tools')
  t.equal(staleReason(pair, ['app.test']), null)
  t.match(staleReason(pair, ['new.test']), /does not cover new.test/)
  t.match(staleReason(pair, ['app.test'], Date.now() + 70 * 86_400_000), /has \d+ days left/)
  t.match(staleReason({ key: 'x', cert: 'y' }, []), /unusable/)
  const other = await generateSelfSigned(['app.test'])
  t.match(staleReason({ key: other.key, cert: pair.cert }, ['app.test']), /unusable \(the private key does not match/, 'a key from another pair is not reused')

  const dir = tempDir(undefined, t)
  const created = await loadOrCreateSelfSigned(dir, [])
  t.equal(created.generated, true)
  t.equal(created.reason, 'the development CA was just made')
  const reused = await loadOrCreateSelfSigned(dir, [])
  t.equal(reused.generated, false)
  writeFileSync(join(dir, 'self-signed', 'cert.pem'), 'garbage')
  const replaced = await loadOrCreateSelfSigned(dir, [])
  t.equal(replaced.generated, true)
  t.match(replaced.reason, /unreadable|unusable/)
})

t.test('each plugin checks the instance it is given and says what to pass to Fastify()', async (t) => {
  const dir = tempDir(undefined, t)
  const plain = Fastify()
  plain.register(tlsPlugin, { dir })
  await t.rejects(Promise.resolve(plain.ready()), { code: 'ERR_SECURE_HTTPS_INSTANCE_MISMATCH', message: /TLS_MODE=self-signed needs an HTTPS server[\s\S]*serverOptions\(config\)/ })

  const https = Fastify({ ...(await serverOptions({ tls: { dir } })) })
  https.register(tlsPlugin, { mode: 'proxy' })
  await t.rejects(Promise.resolve(https.ready()), /TLS_MODE=proxy means no TLS in this process, but the instance is an HTTPS server/)
  await https.close()

  const h2 = Fastify({ ...(await serverOptions({ tls: { dir } })) })
  h2.register(tlsPlugin, { dir, http2: true })
  await t.rejects(Promise.resolve(h2.ready()), /HTTP2=true but the instance is HTTP\/1.1/)
  await h2.close()

  const untrusting = Fastify()
  untrusting.register(proxyTrust, { trust: ['127.0.0.1'] })
  await untrusting.ready()
  const forwarded = await untrusting.inject({ url: '/', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.1' } })
  t.match(forwarded.json(), { statusCode: 500, code: 'ERR_SECURE_HTTPS_INSTANCE_MISMATCH', message: /trustProxy does not match proxyTrust.*serverOptions\(config\)/ }, 'trustProxy shows at the first forwarded request, which fails closed')
  await untrusting.close()

  const aggregate = Fastify()
  aggregate.register(secureHttps, { tls: { dir }, httpsRedirect: false })
  await t.rejects(Promise.resolve(aggregate.ready()), /needs an HTTPS server/)
})

t.test('serverOptions: HTTPS with the profile, trustProxy from the same list', async (t) => {
  const dir = tempDir(undefined, t)
  const options = await serverOptions({ tls: { dir, profile: 'modern' }, proxyTrust: { trust: ['loopback', '10.0.0.1'] } })
  t.equal(options.https?.minVersion, 'TLSv1.3')
  t.match(String(options.https?.cert), /BEGIN CERTIFICATE/)
  t.same(options.trustProxy, ['127.0.0.1/8', '::1/128', '10.0.0.1'])
  const proxied = await serverOptions({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] } })
  t.equal(proxied.https, null, 'no TLS in process behind a proxy')
  const h2 = await serverOptions({ tls: { dir, http2: true } }) as unknown as { http2: boolean, https: { allowHTTP1: boolean } }
  t.equal(h2.http2, true)
  t.equal(h2.https.allowHTTP1, true, 'HTTP/1.1 clients still served')
})

t.test('the tls plugin carries on with the certificate serverOptions loaded, and still watches it', async (t) => {
  const dir = tempDir(undefined, t)
  const first = await generateSelfSigned([])
  const second = await generateSelfSigned([])
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  writeFileSync(certFile, first.cert)
  writeFileSync(keyFile, first.key)
  const options = { tls: { mode: 'files' as const, certFile, keyFile, dir }, httpsRedirect: false as const }
  const app = Fastify({ ...(await serverOptions(options)) })
  t.teardown(() => app.close())
  // Changed between construction and registration: a plugin that loaded again would serve this one.
  writeFileSync(certFile, second.cert)
  writeFileSync(keyFile, second.key)
  await app.register(secureHttps, options)
  await app.ready()
  t.equal(app.tls.status().fingerprint, inspectCertificate(first.cert).fingerprint, 'the pair loaded at construction, not loaded a second time')
  const deadline = Date.now() + 5000
  while (app.tls.status().fingerprint !== inspectCertificate(second.cert).fingerprint && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(app.tls.status().fingerprint, inspectCertificate(second.cert).fingerprint, 'and the handed-over source still picks up the change')
})
