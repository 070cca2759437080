/**
 * fastify.tls.reload() with several pairs (TLS_MODE=files, comma lists), one of them broken: the
 * renewed default is served at once, the broken SNI pair keeps its old certificate, and the error is
 * filed under the broken pair, not the default. Over real TLS.
 */
import t from 'tap'
import { createPki, served, waitForServed, type TestPki } from './helpers/certs.ts'
import { tempDir } from './helpers/app.ts'
import { atomicWrite, writePair, servedWithoutSni } from './helpers/cert-files.ts'
import { startInstance } from './helpers/fleet.ts'

let pki: TestPki
t.before(async () => { pki = await createPki() })

t.test('reload() with a broken SNI pair: the renewed default is served, the broken name keeps its certificate, the error names it', async (t) => {
  const dir = tempDir(undefined, t)
  const leafA = await pki.leaf({ hosts: ['a.test'] })
  const leafB = await pki.leaf({ hosts: ['b.test'] })
  const pairA = writePair(dir, 'a', leafA)
  const pairB = writePair(dir, 'b', leafB)
  const s = await startInstance({
    allowedHosts: ['a.test', 'b.test'],
    tls: { mode: 'files', dir, certFile: `${pairA.certFile},${pairB.certFile}`, keyFile: `${pairA.keyFile},${pairB.keyFile}` },
    httpsRedirect: false
  })
  t.teardown(() => s.close())
  const ca = pki.root.cert

  const renewedA = await pki.leaf({ hosts: ['a.test'] })
  const stranger = await pki.leaf({ hosts: ['b.test'] })
  writePair(dir, 'a', renewedA)
  atomicWrite(pairB.keyFile, stranger.key) // the key of another certificate
  await t.rejects(s.app.tls.reload(), { message: /pair 2 \(.*b\.crt\): .*does not match/ }, 'the reload reports the broken pair')

  t.equal((await served(s.port, { ca, servername: 'a.test' })).fingerprint, renewedA.fingerprint, 'a.test, the default, serves its renewed certificate')
  t.equal(await servedWithoutSni(s.port), renewedA.fingerprint, 'so do clients without SNI')
  t.equal((await served(s.port, { ca, servername: 'b.test' })).fingerprint, leafB.fingerprint, 'b.test keeps its old certificate')
  const status = s.app.tls.status()
  t.equal(status.fingerprint, renewedA.fingerprint)
  t.equal(status.lastReloadError, null, 'no error on the default')
  t.ok(status.lastReload instanceof Date, 'whose reload is recorded')
  t.equal(status.certificates[0]?.lastReloadError, null)
  t.match(status.certificates[1]?.lastReloadError, /b\.crt.*does not match/, 'the error is filed under b.test')
  const event = await s.logs.waitFor((line) => line.securityEvent === 'tls.reload-failed')
  t.equal(event.certificate, 'b.test', 'and logged under its name')
  t.notOk(s.logs.lines.some((line) => line.securityEvent === 'tls.reload-failed' && line.certificate === 'default'), 'nothing is logged against the default')

  // Fixed later, the pair is picked up by its watcher: the broken state did not stick.
  const renewedB = await pki.leaf({ hosts: ['b.test'] })
  writePair(dir, 'b', renewedB)
  await waitForServed(s.port, renewedB.fingerprint, { ca, servername: 'b.test' } as Parameters<typeof waitForServed>[2])
  t.equal((await served(s.port, { ca, servername: 'a.test' })).fingerprint, renewedA.fingerprint, 'a.test is untouched')
  t.equal(s.app.tls.status().certificates[1]?.lastReloadError, null, 'and the error is cleared')
})
