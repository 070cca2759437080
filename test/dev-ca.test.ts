/**
 * The local development CA: made once, private, name-constrained; it issues the development
 * certificates, so trusting it once trusts every later one.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { createPublicKey, X509Certificate } from 'node:crypto'
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import { join } from 'node:path'
import { connect } from 'node:tls'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { constraintsFor, DEV_CA_DNS, DEV_CA_NAME, DEV_CA_IP, findDevCa, loadOrCreateDevCa, permits } from '../tls/dev-ca.ts'
import { chainWarnings } from '../tls/inspect.ts'
import { issueDevelopmentCertificate, loadOrCreateSelfSigned, staleReason } from '../tls/self-signed.ts'
import { buildCertificate, certificateParts, generateEcdsaKey, ipBytes, permittedNames, privateKeyPem } from '../tls/x509.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { request } from './helpers/http.ts'
import { plantCa } from './helpers/dev-ca.ts'
import { requirePrograms, which } from './helpers/external.ts'

const DAY = 86_400_000

async function serve (t: Test, pair: { key: string, cert: string }): Promise<number> {
  const server: Server = createServer(pair, (_request, response) => response.end('ok'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as { port: number }).port
}

/** The TLS error a client trusting only `ca` gets for `servername`, or null when it connects. */
async function tlsError (port: number, servername: string, ca: string): Promise<string | null> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca })
    socket.once('secureConnect', () => { socket.destroy(); resolve(null) })
    socket.once('error', (error) => resolve(error.message))
  })
}

t.test('made once under TLS_DIR/ca: a P-256 root, key 0600, folder 0700, name-constrained', async (t) => {
  const dir = join(tempDir(undefined, t), 'tls')
  const ca = await loadOrCreateDevCa(dir, ['app.test', 'myapp.example.com', '203.0.113.7'])
  t.equal(ca.created, true)
  t.equal(ca.certPath, join(dir, 'ca', 'cert.pem'))
  t.equal(statSync(join(dir, 'ca')).mode & 0o777, 0o700)
  t.equal(statSync(ca.keyPath).mode & 0o777, 0o600, 'the key is readable by its owner only')
  t.equal(statSync(ca.certPath).mode & 0o777, 0o644, 'the certificate is public')
  t.ok(existsSync(join(dir, '.gitignore')), 'TLS_DIR keeps itself out of git')
  const cert = new X509Certificate(readFileSync(ca.certPath))
  t.equal(cert.ca, true)
  t.equal(cert.subject, cert.issuer, 'self-signed root')
  t.ok(cert.verify(cert.publicKey))
  t.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
  t.match(cert.subject, /CN=fastify-secure-https development CA/)
  t.ok(new Date(cert.validTo).getTime() > Date.now() + 3000 * DAY, 'valid for about ten years')
  t.same(ca.permitted.dns, [...DEV_CA_DNS, 'myapp.example.com'], 'local names, plus the configured names outside them')
  t.same(ca.permitted.ip, [...DEV_CA_IP, '203.0.113.7/32'])
  t.same(permittedNames(cert.raw), ca.permitted, 'the constraints read back from the certificate as written')

  if (which('openssl') !== null) {
    const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', ca.certPath], { encoding: 'utf8' })
    t.match(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/, 'OpenSSL reads CA:TRUE, pathlen 0 (critical)')
    t.match(text, /Key Usage: critical\s+Certificate Sign, CRL Sign/)
    t.match(text, /Name Constraints: critical\s+Permitted:\s+DNS:localhost\s+DNS:test/)
    t.match(text, /IP:127\.0\.0\.0\/255\.0\.0\.0/)
    t.match(text, /IP:0:0:0:0:0:0:0:1\/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF/)
  }

  const again = await loadOrCreateDevCa(dir, ['other.test'])
  t.equal(again.created, false, 'the second call loads it')
  t.equal(again.fingerprint, ca.fingerprint)
  t.same(again.permitted, ca.permitted, 'constraints are fixed when the CA is made')
  t.equal((await findDevCa(dir))?.fingerprint, ca.fingerprint)
  t.equal(await findDevCa(tempDir(undefined, t)), null, 'findDevCa never makes one')
})

t.test('a new leaf for new names keeps the trust of the CA: served over real TLS to a client that trusts only the CA', async (t) => {
  const dir = tempDir(undefined, t)
  const first = await startApp({ tls: { dir }, allowedHosts: ['localhost'] }, (app) => { app.get('/', async () => 'one') })
  const ca = readFileSync(join(dir, 'ca', 'cert.pem'), 'utf8')
  const one = await request(`${first.url}/`, { ca })
  t.equal(one.body, 'one', 'trusted with the CA alone')
  const leaf = new X509Certificate(one.tls?.certificate.raw as Buffer)
  t.equal(leaf.ca, false)
  t.ok(leaf.checkIssued(new X509Certificate(ca)), 'issued by the development CA')
  t.ok(new Date(leaf.validTo).getTime() - Date.now() <= 398 * DAY, 'at most 398 days, which browsers accept')
  t.same(first.app.tls.status().warnings, [], 'no "without the intermediates" warning: the CA is the whole chain')
  await first.close()

  const second = await startApp({ tls: { dir }, allowedHosts: ['localhost', 'app.test', '10.1.2.3'] }, (app) => { app.get('/', async () => 'two') })
  const two = await request(`${second.url}/`, { ca, servername: 'app.test', headers: { host: 'app.test' } })
  t.equal(two.body, 'two', 'ALLOWED_HOSTS changed: a new leaf, trusted by the same CA')
  t.not(two.tls?.certificate.fingerprint256, one.tls?.certificate.fingerprint256)
  t.same(second.app.tls.status().sans, ['localhost', '127.0.0.1', '::1', 'app.test', '10.1.2.3'])
  await second.close()
})

t.test('names outside the constraints: left out of the leaf, and refused by clients if forged', async (t) => {
  const dir = tempDir(undefined, t)
  const ca = await loadOrCreateDevCa(dir, [])
  const issued = await loadOrCreateSelfSigned(dir, ['app.test', 'www.example.org'])
  t.same(issued.excluded, ['www.example.org'], 'reported as excluded')
  t.notMatch(new X509Certificate(issued.cert).subjectAltName, /example\.org/, 'and left out: one foreign name would make browsers refuse the whole certificate')
  t.equal(staleReason(issued, ['app.test', 'www.example.org'], Date.now(), ca), null, 'a leaf without them is not stale (no re-issue at every start)')

  // The CA key in the wrong hands: a leaf for a real site is refused by OpenSSL through Node.
  const keys = await generateEcdsaKey()
  const forged = buildCertificate({
    subject: { commonName: 'bank.example.com' },
    publicKey: keys.publicKey,
    issuer: { subject: ca.subject, key: ca.key, publicKey: createPublicKey(ca.key) },
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 30 * DAY),
    ca: false,
    hosts: ['bank.example.com']
  })
  const forgedPort = await serve(t, { key: privateKeyPem(keys.privateKey), cert: forged })
  t.match(await tlsError(forgedPort, 'bank.example.com', ca.cert), /permitted subtree violation/, 'the name constraints are enforced')
  const goodPort = await serve(t, { key: issued.key, cert: issued.cert })
  t.equal(await tlsError(goodPort, 'app.test', ca.cert), null, 'while a name inside them is trusted')
})

t.test('the cached leaf is re-issued when the CA changes, and the CA when it nears its end', async (t) => {
  const dir = tempDir(undefined, t)
  const first = await loadOrCreateSelfSigned(dir, [])
  t.equal(first.generated, true)
  t.equal(first.reason, 'the development CA was just made')
  const reused = await loadOrCreateSelfSigned(dir, [])
  t.equal(reused.generated, false)
  t.equal(reused.cert, first.cert)

  const later = Date.now() + 3640 * DAY
  const renewed = await loadOrCreateSelfSigned(dir, [], later)
  t.equal(renewed.ca.created, true, 'a CA with less than 30 days left is replaced')
  t.match(renewed.reason, /the development CA was replaced: the development CA expires on/)
  t.not(renewed.ca.fingerprint, first.ca.fingerprint)
  t.ok(readdirSync(dir).some((name) => name.startsWith('ca.replaced-')), 'the old CA is kept aside, not deleted')
  const other = await loadOrCreateDevCa(tempDir(undefined, t))
  t.match(staleReason(first, [], Date.now(), other), /not issued by the current development CA/)
})

t.test('two processes starting at once agree on one CA', async (t) => {
  const dir = tempDir(undefined, t)
  const all = await Promise.all(Array.from({ length: 6 }, async () => await loadOrCreateDevCa(dir)))
  t.equal(new Set(all.map((ca) => ca.fingerprint)).size, 1, 'one fingerprint')
  t.same(readdirSync(dir).filter((name) => name.endsWith('.tmp')), [], 'no temporary folder left')
})

t.test('a wildcard, a single label or junk in the hosts never widens the CA: openssl verify refuses a leaf for a bank under the public suffix', async (t) => {
  const bins = requirePrograms(t, ['openssl'])
  if (bins === null) return
  const dir = tempDir(undefined, t)
  const hosts = ['*.co.uk', '*.com', 'com', 'uk', ' *.CO.UK ', 'co.uk/x', 'app.example.com', '*.']
  t.same(constraintsFor(hosts), { dns: [...DEV_CA_DNS, 'app.example.com'], ip: [...DEV_CA_IP] }, 'only the exact name is added')
  const ca = await loadOrCreateDevCa(dir, hosts)
  t.same(ca.permitted.dns, [...DEV_CA_DNS, 'app.example.com'])
  const caFile = join(dir, 'ca', 'cert.pem')
  const keys = await generateEcdsaKey()
  const verify = (name: string): { ok: boolean, output: string } => {
    const leaf = buildCertificate({
      subject: { commonName: name },
      publicKey: keys.publicKey,
      issuer: { subject: ca.subject, key: ca.key, publicKey: createPublicKey(ca.key) },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 30 * DAY),
      ca: false,
      hosts: [name]
    })
    const leafFile = join(dir, `${name}.pem`)
    writeFileSync(leafFile, leaf)
    const run = spawnSync(bins.openssl as string, ['verify', '-CAfile', caFile, leafFile], { encoding: 'utf8' })
    return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` }
  }
  const bank = verify('www.bigbank.co.uk')
  t.equal(bank.ok, false, 'a leaf for www.bigbank.co.uk does not verify')
  t.match(bank.output, /permitted subtree violation/)
  t.match(verify('shop.com').output, /permitted subtree violation/, 'nor one under .com')
  t.equal(verify('app.example.com').ok, true, 'the exact configured name still verifies')
  t.equal(verify('x.app.example.com').ok, true, 'as do names under it (a DNS constraint covers its subtree)')
})

t.test('a CA on disk the suite would not make is replaced, saying why: no constraints, another name, no localhost, wider constraints', async (t) => {
  const cases = [
    { kind: 'no name constraints', subject: { commonName: DEV_CA_NAME }, permitted: undefined, why: /it carries no name constraints, so it could issue certificates for any site/ },
    { kind: 'another common name', subject: { commonName: 'Some Other Root' }, permitted: constraintsFor([]), why: /its subject is "CN=Some Other Root", not CN=fastify-secure-https development CA/ },
    { kind: 'constraints without localhost', subject: { commonName: DEV_CA_NAME }, permitted: { dns: ['test'], ip: ['10.0.0.0/8'] }, why: /do not permit localhost/ },
    { kind: 'a public suffix in its constraints', subject: { commonName: DEV_CA_NAME }, permitted: { dns: [...DEV_CA_DNS, 'com'], ip: [...DEV_CA_IP] }, why: /its name constraints permit com, wider than a development CA needs/ },
    { kind: 'a public range in its constraints', subject: { commonName: DEV_CA_NAME }, permitted: { dns: [...DEV_CA_DNS], ip: [...DEV_CA_IP, '8.0.0.0/8'] }, why: /permit 8\.0\.0\.0\/8/ }
  ]
  for (const { kind, subject, permitted, why } of cases) {
    await t.test(kind, async (t) => {
      const dir = tempDir(undefined, t)
      const bad = await plantCa(dir, permitted, subject)
      const badFingerprint = new X509Certificate(bad).fingerprint256
      t.equal(await findDevCa(dir), null, 'not offered to trust or to the summary')

      const started = await startApp({ tls: { dir }, allowedHosts: ['localhost'] }, (app) => { app.get('/', async () => 'ok') })
      t.teardown(started.close)
      const line = started.logs.lines.find((entry) => entry.level === 40 && /the development CA was replaced/.test(String(entry.msg)))
      t.match(line?.msg, why, 'a warning says why')
      t.match(line?.msg, /run npx fastify-secure-https trust/)
      const ca = readFileSync(join(dir, 'ca', 'cert.pem'), 'utf8')
      const made = new X509Certificate(ca)
      t.not(made.fingerprint256, badFingerprint, 'a new CA is in TLS_DIR/ca')
      t.same(permittedNames(made.raw), constraintsFor(['localhost']))
      t.ok(readdirSync(dir).some((name) => name.startsWith('ca.replaced-')), 'the unfit one is kept aside')
      const answer = await request(`${started.url}/`, { ca })
      t.equal(answer.body, 'ok', 'the leaf served is trusted through the new CA alone')
      const leaf = new X509Certificate(answer.tls?.certificate.raw as Buffer)
      t.ok(leaf.checkIssued(made), 'issued by the new CA')
      t.notOk(leaf.checkIssued(new X509Certificate(bad)), 'not by the unfit one')
      t.match(leaf.subjectAltName, /DNS:localhost/, 'with its names')
      t.match(started.app.tls.status().origin, why, 'the origin says it too')
    })
  }
})

t.test('a CA that may issue for none of the names issues no leaf without names', async (t) => {
  const dir = tempDir(undefined, t)
  const ca = await loadOrCreateDevCa(dir)
  await t.rejects(issueDevelopmentCertificate({ ...ca, permitted: { dns: ['test'], ip: [] } }, []), { code: 'ERR_SECURE_HTTPS_CERTIFICATE', message: /may issue for none of localhost, 127\.0\.0\.1, ::1/ })
})

t.test('a CA key another user could read or write is refused, never used', { skip: typeof process.getuid === 'function' ? false : 'no POSIX permissions' }, async (t) => {
  const dir = tempDir(undefined, t)
  const ca = await loadOrCreateDevCa(dir)
  chmodSync(ca.keyPath, 0o644)
  await t.rejects(loadOrCreateDevCa(dir), { code: 'ERR_SECURE_HTTPS_INSECURE_STORAGE', message: /private key that other users can read.*chmod 600/ })
})

t.test('a leaf issued straight by a root the user trusts is a complete chain', async (t) => {
  const dir = tempDir(undefined, t)
  const ca = await loadOrCreateDevCa(dir)
  const leaf = await issueDevelopmentCertificate(ca, ['app.test'])
  t.match(chainWarnings(leaf.cert).join('\n'), /without the intermediates/, 'without knowing the root: the usual warning')
  t.same(chainWarnings(leaf.cert, Date.now(), ca.cert), [], 'issued by the given root: no warning')
  const stranger = await loadOrCreateDevCa(tempDir(undefined, t))
  t.match(chainWarnings(leaf.cert, Date.now(), stranger.cert).join('\n'), /without the intermediates/, 'another root does not count')
})

t.test('name constraint matching', async (t) => {
  const permitted = constraintsFor([])
  for (const host of ['localhost', 'app.localhost', 'x.test', 'a.b.internal', 'nas.home.arpa', '127.0.0.1', '10.9.8.7', '172.31.255.255', '192.168.1.20', '::1', 'fd00::1', 'fe80::1']) {
    t.ok(permits(permitted, host), `${host} is local`)
  }
  for (const host of ['example.com', 'localhost.com', 'test.com', 'attest', 'xtest', '8.8.8.8', '172.32.0.1', '2001:db8::1', '::2']) {
    t.notOk(permits(permitted, host), `${host} is not`)
  }
  t.same(constraintsFor(['evil.com/path', 'a b', '*.wild.example.com', 'app.example.com']).dns, [...DEV_CA_DNS, 'app.example.com'], 'only exact host names become constraints')
  t.same([...ipBytes('::ffff:1.2.3.4')].slice(-4), [1, 2, 3, 4])
  t.same(ipBytes('2001:db8::1').toString('hex'), '20010db8000000000000000000000001')
})

t.test('the DER reader refuses what it cannot read, in time linear in its length', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
    try {
      certificateParts(Buffer.from(bytes))
    } catch (error) {
      if (!(error instanceof TypeError) && !(error instanceof RangeError)) throw error
    }
  }), { numRuns: 2000 })
  const dir = tempDir(undefined, t)
  const ca = await loadOrCreateDevCa(dir)
  const der = new X509Certificate(ca.cert).raw
  fc.assert(fc.property(fc.nat({ max: der.length - 1 }), fc.nat({ max: 255 }), (at, byte) => {
    const mutated = Buffer.from(der)
    mutated[at] = byte
    try {
      permittedNames(mutated)
    } catch (error) {
      if (!(error instanceof TypeError) && !(error instanceof RangeError)) throw error
    }
  }), { numRuns: 2000 })
})
