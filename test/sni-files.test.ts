/**
 * TLS_MODE=files with several pairs (TLS_CERT_FILE and TLS_KEY_FILE as comma lists), over real TLS:
 * each name gets its certificate by SNI, the first pair is the default for unknown names and for
 * clients without SNI, each pair is watched and reloaded on its own, and a broken pair is refused
 * alone.
 */
import Fastify from 'fastify'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import { channelNames, type CertificateMessage } from '../diagnostics.ts'
import { ConfigError, loadConfig, resolveConfig, serverOptions, tls } from '../index.ts'
import { createPki, served, waitForServed, type TestPki } from './helpers/certs.ts'
import { tempDir } from './helpers/app.ts'
import { atomicWrite, writePair, servedWithoutSni, type Pair } from './helpers/cert-files.ts'
import { startInstance, type Instance } from './helpers/fleet.ts'

let pki: TestPki
t.before(async () => { pki = await createPki() })

function filesOptions (pairs: Pair[], dir: string): Parameters<typeof startInstance>[0] {
  return {
    allowedHosts: ['a.test', 'b.test', 'x.b.test'],
    tls: { mode: 'files', dir, certFile: pairs.map((pair) => pair.certFile).join(','), keyFile: pairs.map((pair) => pair.keyFile).join(',') },
    httpsRedirect: false
  }
}

t.test('two names, two certificates, chosen by SNI over real TLS', async (t) => {
  const dir = tempDir(undefined, t)
  const leafA = await pki.leaf({ hosts: ['a.test'] })
  const leafB = await pki.leaf({ hosts: ['b.test', '*.b.test'] })
  const pairA = writePair(dir, 'a', leafA)
  const pairB = writePair(dir, 'b', leafB)
  const published: CertificateMessage[] = []
  const listener = (message: unknown): void => { published.push(message as CertificateMessage) }
  subscribe(channelNames.certificate, listener)
  t.teardown(() => unsubscribe(channelNames.certificate, listener))
  const s: Instance = await startInstance(filesOptions([pairA, pairB], dir))
  t.teardown(() => s.close())
  const ca = pki.root.cert

  t.equal((await served(s.port, { ca, servername: 'a.test' })).fingerprint, leafA.fingerprint, 'a.test gets its certificate, verified by a client checking the name')
  t.equal((await served(s.port, { ca, servername: 'b.test' })).fingerprint, leafB.fingerprint, 'b.test gets its own')
  t.equal((await served(s.port, { ca, servername: 'x.b.test' })).fingerprint, leafB.fingerprint, 'a name under *.b.test gets b\'s wildcard certificate')
  t.equal((await served(s.port, { servername: 'unknown.test' })).fingerprint, leafA.fingerprint, 'an unknown name gets the default, the first pair')
  t.equal((await served(s.port, { servername: 'B.TEST' })).fingerprint, leafB.fingerprint, 'names are matched without case')
  t.equal(await servedWithoutSni(s.port), leafA.fingerprint, 'a client without SNI gets the default')

  const status = s.app.tls.status()
  t.equal(status.fingerprint, leafA.fingerprint, 'status() keeps the default certificate\'s fields at the top level')
  t.same(status.certificates.map((c) => [c.name, c.default, c.fingerprint, c.names]),
    [['default', true, leafA.fingerprint, ['a.test']], ['b.test', false, leafB.fingerprint, ['b.test', '*.b.test']]], 'and lists every certificate')
  t.same(status.warnings, [], 'the pairs together cover ALLOWED_HOSTS')
  t.same(published.filter((m) => m.action === 'loaded').map((m) => m.name), ['default', 'b.test'], 'each certificate is published as loaded')

  t.test('each pair is hot-reloaded on its own', async (t) => {
    const newB = await pki.leaf({ hosts: ['b.test', '*.b.test'] })
    atomicWrite(pairB.keyFile, newB.key)
    atomicWrite(pairB.certFile, newB.fullchain)
    const tookB = await waitForServed(s.port, newB.fingerprint, { ca, servername: 'b.test' } as Parameters<typeof waitForServed>[2])
    t.ok(tookB < 2000, `b.test serves its new certificate after ${tookB} ms`)
    t.equal((await served(s.port, { ca, servername: 'a.test' })).fingerprint, leafA.fingerprint, 'a.test keeps its own')
    const afterB = s.app.tls.status().certificates
    t.ok(afterB[1]?.lastReload instanceof Date, 'b\'s reload is recorded')
    t.equal(afterB[0]?.lastReload, null, 'a\'s is not')
    const line = await s.logs.waitFor((l) => l.msg === 'TLS certificate reloaded' && l.certificate === 'b.test')
    t.match(line.reason, /b\.crt/, 'the log says which certificate and which file')
    t.ok(published.some((m) => m.action === 'reloaded' && m.name === 'b.test' && m.fingerprint === newB.fingerprint), 'published as reloaded')

    const newA = await pki.leaf({ hosts: ['a.test'] })
    atomicWrite(pairA.keyFile, newA.key)
    atomicWrite(pairA.certFile, newA.fullchain)
    await waitForServed(s.port, newA.fingerprint, { ca, servername: 'a.test' } as Parameters<typeof waitForServed>[2])
    t.equal(await servedWithoutSni(s.port), newA.fingerprint, 'the default follows the first pair')
    t.equal((await served(s.port, { ca, servername: 'b.test' })).fingerprint, newB.fingerprint, 'b.test is untouched')
    t.equal(s.app.tls.status().fingerprint, newA.fingerprint)
  })

  t.test('a broken pair is refused alone; the others keep serving', async (t) => {
    const before = (await served(s.port, { ca, servername: 'b.test' })).fingerprint
    const other = await pki.leaf({ hosts: ['b.test'] })
    atomicWrite(pairB.keyFile, other.key) // the key of another certificate
    const failure = await s.logs.waitFor((l) => l.securityEvent === 'tls.reload-failed' && l.certificate === 'b.test', 5000)
    t.match(failure.reason, /does not match/)
    t.equal((await served(s.port, { ca, servername: 'b.test' })).fingerprint, before, 'b.test keeps its certificate')
    t.match(s.app.tls.status().certificates[1]?.lastReloadError, /does not match/)
    t.equal(s.app.tls.status().certificates[0]?.lastReloadError, null)
    t.ok(published.some((m) => m.action === 'reload-failed' && m.name === 'b.test'))
  })
})

t.test('lists of different lengths, or a broken pair at start, are refused with the variable and the file', async (t) => {
  const dir = tempDir(undefined, t)
  const error = t.throws(() => loadConfig({ TLS_MODE: 'files', TLS_CERT_FILE: '/a.crt,/b.crt', TLS_KEY_FILE: '/a.key' })) as unknown as ConfigError
  t.ok(error instanceof ConfigError)
  t.match(error.message, /TLS_KEY_FILE: lists 1 key file for 2 certificate files in TLS_CERT_FILE; give one key per certificate, in the same order/)
  t.throws(() => loadConfig({ TLS_MODE: 'files', TLS_CERT_FILE: '/a.crt,,/b.crt', TLS_KEY_FILE: '/a.key,/x.key,/b.key' }), /TLS_CERT_FILE: has an empty entry/)
  const leafA = await pki.leaf({ hosts: ['a.test'] })
  const pairA = writePair(dir, 'a', leafA)
  const expired = await pki.leaf({ hosts: ['b.test'], notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) })
  const pairB = writePair(dir, 'b', expired)
  await t.rejects(startInstance(filesOptions([pairA, pairB], dir)), { code: 'ERR_SECURE_HTTPS_CERTIFICATE', message: /pair 2 \(.*b\.crt\): .*expired/ })
})

t.test('an instance built without serverOptions is refused for several pairs: Node\'s own SNI table only grows', async (t) => {
  const dir = tempDir(undefined, t)
  const leafA = await pki.leaf({ hosts: ['a.test'] })
  const leafB = await pki.leaf({ hosts: ['b.test'] })
  const pairA = writePair(dir, 'a', leafA)
  const pairB = writePair(dir, 'b', leafB)
  const single = resolveConfig({ tls: { mode: 'files', dir, ...pairA }, httpsRedirect: false })
  const app = Fastify({ ...(await serverOptions(single)) })
  t.teardown(() => app.close())
  const config = resolveConfig(filesOptions([pairA, pairB], dir))
  if (config.tls === false) throw new Error('no tls')
  app.register(tls, config.tls)
  await t.rejects(async () => { await app.ready() }, {
    code: 'ERR_SECURE_HTTPS_INSTANCE_MISMATCH',
    message: /TLS_CERT_FILE lists 2 certificates, chosen by SNI through a callback that only the server's construction can set.*build the instance with the same config: Fastify\(\{ \.\.\.\(await serverOptions\(config\)\) \}\)/
  })

  // Built from the same config, it serves each name.
  const right = Fastify({ ...(await serverOptions(config)) })
  t.teardown(() => right.close())
  await right.register(tls, config.tls)
  await right.listen({ host: '127.0.0.1', port: 0 })
  const address = right.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  t.equal((await served(port, { ca: pki.root.cert, servername: 'b.test' })).fingerprint, leafB.fingerprint)
  t.equal((await served(port, { ca: pki.root.cert, servername: 'a.test' })).fingerprint, leafA.fingerprint)
})
