/**
 * Certificate checks at start and over time: chain order and completeness, names against
 * ALLOWED_HOSTS, expiry warnings at 30 and 7 days, `fastify.tls.status()`, the self-signed source's
 * renewal through the same reload path, and the files source's stat poll on its own.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { createPrivateKey } from 'node:crypto'
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { resolveConfig, serverOptions, tls as tlsPlugin } from '../index.ts'
import { filesSource, readCertificateFiles } from '../tls/files-source.ts'
import { chainProblems, chainWarnings, inspectCertificate, uncoveredHosts } from '../tls/inspect.ts'
import { generateSelfSigned, writePrivateFile } from '../tls/self-signed.ts'
import { selfSignedSource } from '../tls/self-signed-source.ts'
import type { CertificatePair, CertificateSource, SourceEvents } from '../tls/source.ts'
import { createPki, daysFromNow, served, waitForServed, type Leaf, type TestPki } from './helpers/certs.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { captureLogs } from './helpers/logs.ts'

let pki: TestPki
let dir: string
t.before(async () => {
  pki = await createPki()
  dir = tempDir()
})
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

let counter = 0
function files (leaf: Pick<Leaf, 'key'>, cert: string): { certFile: string, keyFile: string } {
  counter++
  const certFile = join(dir, `cert-${counter}.pem`)
  const keyFile = join(dir, `key-${counter}.pem`)
  writeFileSync(certFile, cert)
  writeFileSync(keyFile, leaf.key)
  return { certFile, keyFile }
}

t.test('a chain out of order is refused at start, naming the fix', async (t) => {
  const leaf = await pki.leaf()
  const reversed = `${pki.intermediate.cert}${leaf.cert}`
  t.match(chainProblems(reversed)[0], /certificate 1 in the file is a CA certificate .*Intermediate.*order the file leaf first/)
  await t.rejects(startApp({ tls: { mode: 'files', ...files(leaf, reversed) } }), { code: 'ERR_SECURE_HTTPS_CERTIFICATE', message: /TLS_CERT_FILE .*is a CA certificate/ })
  const other = await pki.leaf()
  t.match(chainProblems(`${leaf.cert}${other.cert}`)[0], /certificate 2 in the chain did not issue certificate 1; order the file leaf first/)
  t.same(chainProblems(leaf.fullchain), [], 'fullchain order passes')
  t.match(chainProblems(`${leaf.cert}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`)[0], /certificate 2 in the chain cannot be parsed/)
})

t.test('start-up checks: leaf-only file, names not covered, status()', async (t) => {
  const leaf = await pki.leaf({ hosts: ['localhost', '127.0.0.1'] })
  const paths = files(leaf, leaf.cert)
  const s = await startApp({ allowedHosts: ['localhost', '127.0.0.1', 'www.example.com'], tls: { mode: 'files', ...paths } })
  t.teardown(() => s.close())
  const status = s.app.tls.status()
  t.equal(status.mode, 'files')
  t.equal(status.source, `files: ${paths.certFile}, ${paths.keyFile}`)
  t.equal(status.subject, 'CN=localhost')
  t.match(status.issuer, /Test Intermediate CA/)
  t.same(status.sans, ['localhost', '127.0.0.1'])
  t.equal(status.fingerprint, leaf.fingerprint)
  t.ok(status.notBefore < new Date() && status.notAfter > daysFromNow(89), 'validity dates')
  t.equal(status.keyType, 'ec P-256')
  t.equal(status.selfSigned, false)
  t.equal(status.lastReload, null)
  t.equal(status.lastReloadError, null)
  t.equal(status.profile, 'intermediate')
  t.equal(status.warnings.length, 2)
  t.match(status.warnings[0], /only the leaf certificate.*fullchain\.pem, not cert\.pem/, 'a leaf without intermediates is warned about')
  t.match(status.warnings[1], /does not cover www\.example\.com from ALLOWED_HOSTS/, 'a name in ALLOWED_HOSTS the certificate lacks is warned about')
  t.ok(s.logs.lines.some((l) => l.level === 40 && /only the leaf certificate/.test(String(l.msg))), 'and logged at warn')

  // Served anyway: the checks warn, they do not refuse. A client with the intermediate cached
  // connects; one with only the root cannot, which is what the warning is about.
  t.equal((await served(s.port, { ca: `${pki.root.cert}${pki.intermediate.cert}` })).fingerprint, leaf.fingerprint)
  await t.rejects(served(s.port, { ca: pki.root.cert }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })
})

t.test('no warning for a full chain or a self-signed certificate', async (t) => {
  const leaf = await pki.leaf()
  t.same(chainWarnings(leaf.fullchain), [])
  const self = await generateSelfSigned([])
  t.same(chainWarnings(self.cert), [], 'a self-signed leaf has no intermediates to miss')
})

t.test('tls.expiring at 30 and 7 days, once each, again after a reload', async (t) => {
  const leaf = await pki.leaf({ days: 20 })
  const paths = files(leaf, leaf.fullchain)
  const s = await startApp({ tls: { mode: 'files', ...paths } })
  t.teardown(() => s.close())
  const first = await s.logs.waitFor((l) => l.securityEvent === 'tls.expiring', 2000)
  t.equal(first.daysLeft, 19, 'a certificate with 20 days left warns at start (30-day threshold)')
  t.equal(first.fingerprint, leaf.fingerprint)
  t.match(first.msg, /expires in 19 days/)

  const soon = await pki.leaf({ days: 5 })
  writeFileSync(paths.certFile, soon.fullchain)
  writeFileSync(paths.keyFile, soon.key)
  await s.app.tls.reload()
  const events = s.logs.events('tls.expiring')
  t.equal(events.length, 2, 'one more event for the new certificate')
  t.equal(events[1]?.daysLeft, 4, '5 days left crosses the 7-day threshold')
  await s.app.tls.reload()
  t.equal(s.logs.events('tls.expiring').length, 2, 'not repeated while nothing changes')

  const fresh = await pki.leaf({ days: 60 })
  const quiet = await startApp({ tls: { mode: 'files', ...files(fresh, fresh.fullchain) } })
  t.teardown(() => quiet.close())
  t.equal(quiet.logs.events('tls.expiring').length, 0, 'no event with 60 days left')
})

t.test('the self-signed source renews through the same reload path', async (t) => {
  const tlsDir = tempDir()
  t.teardown(() => rmSync(tlsDir, { recursive: true, force: true }))
  const config = resolveConfig({ tls: { dir: tlsDir }, httpsRedirect: false })
  const logs = captureLogs('info')
  const app = Fastify({ logger: logs.logger, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  if (config.tls === false) throw new Error('tls expected')
  await app.register(tlsPlugin, { ...config.tls, source: selfSignedSource(config.tls, 100) })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const before = app.tls.status()
  t.equal(before.source, 'self-signed: provided source')
  t.equal((await served(port)).fingerprint, before.fingerprint)

  // The cached certificate is found near its end (here: replaced by one with 10 days left).
  const old = await generateSelfSigned([], 10)
  await writePrivateFile(join(tlsDir, 'self-signed', 'key.pem'), old.key)
  await writePrivateFile(join(tlsDir, 'self-signed', 'cert.pem'), old.cert)
  const renewed = await logs.waitFor((l) => l.msg === 'TLS certificate reloaded', 3000)
  t.equal(renewed.reason, 'self-signed certificate renewed')
  const after = app.tls.status()
  t.not(after.fingerprint, before.fingerprint, 'a new certificate')
  t.ok(after.notAfter > daysFromNow(80), 'with a full lifetime')
  t.not(after.fingerprint, inspectCertificate(old.cert).fingerprint, 'not the stale one')
  await waitForServed(port, after.fingerprint)
  t.equal(logs.events('tls.expiring').length, 0, 'no expiry warning for a dev certificate that renews itself')
})

t.test('the stat poll catches what no watcher sees: a swapped parent-directory symlink', async (t) => {
  const base = tempDir()
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const a = await pki.leaf()
  const b = await pki.leaf()
  for (const [name, leaf] of [['v1', a], ['v2', b]] as const) {
    mkdirSync(join(base, name))
    writeFileSync(join(base, name, 'cert.pem'), leaf.fullchain)
    writeFileSync(join(base, name, 'key.pem'), leaf.key)
  }
  symlinkSync('v1', join(base, 'current'))
  const config = { certFile: join(base, 'current', 'cert.pem'), keyFile: join(base, 'current', 'key.pem') }
  const source = filesSource(config, { settle: 50, poll: 200 })
  t.teardown(() => source.stop())
  t.equal((await source.load()).info.fingerprint, a.fingerprint)
  const updates: CertificatePair[] = []
  const errors: Error[] = []
  source.start({ update: (pair) => updates.push(pair), error: (error) => errors.push(error) })
  await new Promise((resolve) => setTimeout(resolve, 100))
  symlinkSync('v2', join(base, 'next'))
  renameSync(join(base, 'next'), join(base, 'current'))
  const started = Date.now()
  while (updates.length === 0 && Date.now() - started < 30_000) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(updates[0]?.info.fingerprint, b.fingerprint, `picked up after ${Date.now() - started} ms`)
  t.same(errors, [])
  await source.stop()
  symlinkSync('v1', join(base, 'next'))
  renameSync(join(base, 'next'), join(base, 'current'))
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(updates.length, 1, 'nothing is reported after stop()')
})

t.test('readCertificateFiles explains what is wrong', async (t) => {
  const leaf = await pki.leaf()
  await t.rejects(readCertificateFiles({ certFile: join(dir, 'missing.pem'), keyFile: join(dir, 'missing-key.pem') }), /TLS_CERT_FILE .*missing\.pem does not exist/)
  await t.rejects(readCertificateFiles({}), /TLS_CERT_FILE and TLS_KEY_FILE are required/)
  const paths = files(leaf, leaf.fullchain)
  writeFileSync(paths.keyFile, leaf.cert)
  await t.rejects(readCertificateFiles(paths), new RegExp(`private key in TLS_KEY_FILE ${paths.keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} holds a certificate, not a private key; swap TLS_CERT_FILE and TLS_KEY_FILE`), 'a certificate where the key should be, named with the variable and the file')
  writeFileSync(paths.keyFile, leaf.key.slice(0, 60))
  await t.rejects(readCertificateFiles(paths), /private key in TLS_KEY_FILE .*key.* cannot be parsed .*written completely/, 'a truncated key, named with the variable and the file')
  const future = await pki.leaf({ notBefore: daysFromNow(2), notAfter: daysFromNow(90) })
  await t.rejects(readCertificateFiles(files(future, future.fullchain)), /not valid before .*check the system clock/)
  const withCa = { ...files(leaf, leaf.fullchain), caFile: join(dir, 'ca.pem') }
  writeFileSync(withCa.caFile, pki.root.cert)
  const pair = await readCertificateFiles({ ...withCa, passphrase: undefined })
  t.equal(pair.ca, pki.root.cert, 'TLS_CA_FILE is read along')
})

t.test('an encrypted key with TLS_KEY_PASSPHRASE, a CA file, and an RSA key are served', async (t) => {
  const leaf = await pki.leaf({ kind: 'rsa2048' })
  const encrypted = createPrivateKey(leaf.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'correct horse' }) as string
  const paths = files({ key: encrypted }, leaf.fullchain)
  await t.rejects(readCertificateFiles(paths), /private key in TLS_KEY_FILE .* is encrypted and cannot be decrypted; set TLS_KEY_PASSPHRASE/)
  await t.rejects(readCertificateFiles({ ...paths, passphrase: 'wrong horse' }), /private key in TLS_KEY_FILE .* cannot be decrypted with TLS_KEY_PASSPHRASE; check the passphrase/, 'a wrong passphrase is not told to set one')
  const caFile = join(dir, 'client-ca.pem')
  writeFileSync(caFile, pki.root.cert)
  const s = await startApp({ tls: { mode: 'files', ...paths, caFile, passphrase: 'correct horse' } })
  t.teardown(() => s.close())
  t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, leaf.fingerprint)
  t.equal(s.app.tls.status().keyType, 'rsa 2048')
  t.equal(s.app.tls.status().source, `files: ${paths.certFile}, ${paths.keyFile}, ${caFile}`)
  const next = await pki.leaf({ kind: 'rsa2048' })
  writeFileSync(paths.certFile, next.fullchain)
  writeFileSync(paths.keyFile, createPrivateKey(next.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'correct horse' }) as string)
  await s.app.tls.reload()
  t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, next.fingerprint, 'a reload keeps the passphrase')
})

t.test('names: wildcards cover one label, IPv6 in short form', async (t) => {
  t.same(uncoveredHosts(['*.example.com', '::1'], ['www.example.com', 'example.com', 'a.b.example.com', '::1']), ['example.com', 'a.b.example.com'])
})

t.test('a pair Node refuses when applying it is reported, and the old one keeps serving', async (t) => {
  const leaf = await pki.leaf()
  let events: SourceEvents | undefined
  const good = await readCertificateFiles(files(leaf, leaf.fullchain))
  let next: CertificatePair = good
  const source: CertificateSource = {
    mode: 'files',
    load: async () => next,
    start: (e) => { events = e },
    stop: async () => { events = undefined }
  }
  const config = resolveConfig({ tls: { mode: 'files', certFile: 'unused', keyFile: 'unused' }, httpsRedirect: false })
  if (config.tls === false) throw new Error('tls expected')
  const logs = captureLogs('info')
  const app = Fastify({ logger: logs.logger, https: { key: leaf.key, cert: leaf.fullchain } }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(tlsPlugin, { ...config.tls, source })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  // Passes the source's checks on paper, but the key is not one OpenSSL can load.
  const broken: CertificatePair = { ...good, key: good.key.replace(/^(-----BEGIN PRIVATE KEY-----\n)(.)/, '$1A'), info: { ...good.info, fingerprint: 'changed' } }
  events?.update(broken, 'test')
  t.equal(logs.events('tls.reload-failed').length, 1, 'reported as tls.reload-failed')
  t.equal((await served(port, { ca: pki.root.cert })).fingerprint, leaf.fingerprint, 'the previous context stays')
  next = broken
  await t.rejects(app.tls.reload(), 'reload() rejects too')
  t.equal(app.tls.status().fingerprint, leaf.fingerprint)
  events?.error(new Error('from the source'))
  t.equal(app.tls.status().lastReloadError, 'from the source')
})

t.test('the instance must match the config', async (t) => {
  const leaf = await pki.leaf()
  const paths = files(leaf, leaf.fullchain)
  const plain = Fastify()
  t.teardown(() => plain.close())
  plain.register(tlsPlugin, { mode: 'files', ...paths })
  await t.rejects(async () => { await plain.ready() }, /TLS_MODE=files needs an HTTPS server.*serverOptions/)

  const https = Fastify({ https: { key: leaf.key, cert: leaf.fullchain } })
  t.teardown(() => https.close())
  https.register(tlsPlugin, { mode: 'proxy' })
  await t.rejects(async () => { await https.ready() }, /TLS_MODE=proxy means no TLS in this process, but the instance is an HTTPS server/)

  const h1 = Fastify({ https: { key: leaf.key, cert: leaf.fullchain } })
  t.teardown(() => h1.close())
  h1.register(tlsPlugin, { mode: 'files', ...paths, http2: true })
  await t.rejects(async () => { await h1.ready() }, /HTTP2=true but the instance is HTTP\/1\.1/)

  const off = Fastify()
  t.teardown(() => off.close())
  off.register(tlsPlugin, { mode: 'off' })
  await t.resolves(async () => { await off.ready() }, 'mode off on a plain instance is fine')
  t.equal(off.hasDecorator('tls'), false, 'and adds no fastify.tls')
})

async function appWithSource (t: Test, mode: 'files' | 'self-signed', pair: CertificatePair, expiryCheckEvery?: number) {
  const dir = tempDir(undefined, t)
  const config = resolveConfig({ tls: { dir }, httpsRedirect: false })
  if (config.tls === false) throw new Error('tls expected')
  const logs = captureLogs('info')
  const app = Fastify({ logger: logs.logger, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  const source: CertificateSource = { mode, load: async () => pair, start () {}, stop: async () => {} }
  // The injected source stands in for the files; the paths only satisfy the schema.
  await app.register(tlsPlugin, { ...config.tls, mode, certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), source, ...(expiryCheckEvery === undefined ? {} : { expiryCheckEvery }) })
  await app.ready()
  return logs
}

function pairOf (pem: { key: string, cert: string }): CertificatePair {
  return { key: pem.key, cert: pem.cert, info: inspectCertificate(pem.cert) }
}

t.test('the periodic expiry check does not repeat an event for the same certificate', async (t) => {
  const logs = await appWithSource(t, 'files', pairOf(await generateSelfSigned([], 20)), 20)
  await logs.waitFor((l) => l.securityEvent === 'tls.expiring', 2000)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(logs.events('tls.expiring').length, 1, 'ten checks later, still one event')
})

t.test('a self-signed certificate, which renews itself at 30 days, warns only at 7', async (t) => {
  const twenty = await appWithSource(t, 'self-signed', pairOf(await generateSelfSigned([], 20)))
  t.equal(twenty.events('tls.expiring').length, 0, 'no 30-day warning for 20 days left')
  const five = await appWithSource(t, 'self-signed', pairOf(await generateSelfSigned([], 5)))
  const event = await five.waitFor((l) => l.securityEvent === 'tls.expiring', 2000)
  t.equal(event.daysLeft, 4, 'the 7-day warning still fires')
  const files = await appWithSource(t, 'files', pairOf(await generateSelfSigned([], 20)))
  t.equal((await files.waitFor((l) => l.securityEvent === 'tls.expiring', 2000)).daysLeft, 19, 'the same pair from files warns at 30 days')
})
