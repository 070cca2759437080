/**
 * A certificate file cut short (a BEGIN line without its END, as a copy interrupted leaves it) is
 * refused with a message naming TLS_CERT_FILE (or TLS_CA_FILE) and the fix, at start and at a
 * reload, instead of OpenSSL's bare ERR_OSSL_PEM_BAD_END_LINE; the old pair keeps serving.
 */
import { join } from 'node:path'
import t from 'tap'
import { chainProblems, truncatedPem } from '../tls/inspect.ts'
import { createPki, served, type TestPki } from './helpers/certs.ts'
import { tempDir } from './helpers/app.ts'
import { atomicWrite } from './helpers/cert-files.ts'
import { startInstance } from './helpers/fleet.ts'

let pki: TestPki
t.before(async () => { pki = await createPki() })

/** The PEM with its last END line and what follows cut off. */
function cut (pem: string): string {
  return pem.slice(0, pem.lastIndexOf('-----END CERTIFICATE-----'))
}

const CUT_SHORT = /TLS_CERT_FILE .*cert\.pem: the file is cut short or damaged: 2 "-----BEGIN CERTIFICATE-----" lines but 1 "-----END CERTIFICATE-----" line; write the whole file again/

t.test('the count of BEGIN and END lines', async (t) => {
  const leaf = await pki.leaf({ hosts: ['localhost'] })
  t.equal(truncatedPem(leaf.fullchain), null, 'a whole chain')
  t.same(chainProblems(leaf.fullchain), [])
  t.match(chainProblems(cut(leaf.fullchain)), [/cut short/], 'a chain whose intermediate lost its END line')
  t.match(truncatedPem(`${leaf.fullchain}-----END CERTIFICATE-----\n`), /2 "-----BEGIN CERTIFICATE-----" lines but 3 "-----END CERTIFICATE-----" lines/, 'an END line too many is reported too')
})

t.test('at start: refused naming TLS_CERT_FILE and the fix, not ERR_OSSL_PEM_BAD_END_LINE', async (t) => {
  const dir = tempDir(undefined, t)
  const leaf = await pki.leaf({ hosts: ['localhost'] })
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  atomicWrite(certFile, cut(leaf.fullchain))
  atomicWrite(keyFile, leaf.key)
  const error = await startInstance({ tls: { mode: 'files', dir, certFile, keyFile }, httpsRedirect: false }).then(async (s) => { await s.close(); return null }, (error: Error) => error)
  t.match(error, { code: 'ERR_SECURE_HTTPS_CERTIFICATE', message: CUT_SHORT })
  t.notMatch(error?.message, /ERR_OSSL|BAD_END_LINE/)
})

t.test('TLS_CA_FILE cut short is named as such', async (t) => {
  const dir = tempDir(undefined, t)
  const leaf = await pki.leaf({ hosts: ['localhost'] })
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  const caFile = join(dir, 'ca.pem')
  atomicWrite(certFile, leaf.fullchain)
  atomicWrite(keyFile, leaf.key)
  atomicWrite(caFile, cut(pki.root.cert))
  const error = await startInstance({ tls: { mode: 'files', dir, certFile, keyFile, caFile }, httpsRedirect: false }).then(async (s) => { await s.close(); return null }, (error: Error) => error)
  t.match(error, { code: 'ERR_SECURE_HTTPS_CERTIFICATE', message: /TLS_CA_FILE .*ca\.pem: the file is cut short or damaged: 1 "-----BEGIN CERTIFICATE-----" line but 0/ })
})

t.test('at a reload: the watcher and reload() report it by name; the old pair keeps serving over TLS', async (t) => {
  const dir = tempDir(undefined, t)
  const leaf = await pki.leaf({ hosts: ['localhost'] })
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  atomicWrite(certFile, leaf.fullchain)
  atomicWrite(keyFile, leaf.key)
  const s = await startInstance({ tls: { mode: 'files', dir, certFile, keyFile }, httpsRedirect: false })
  t.teardown(() => s.close())

  const next = await pki.leaf({ hosts: ['localhost'] })
  atomicWrite(keyFile, next.key)
  atomicWrite(certFile, cut(next.fullchain))
  const event = await s.logs.waitFor((line) => line.securityEvent === 'tls.reload-failed', 5000)
  t.match(event.reason, CUT_SHORT, 'the watcher reports it')
  await t.rejects(s.app.tls.reload(), { message: CUT_SHORT }, 'so does reload()')
  t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, leaf.fingerprint, 'the old certificate keeps serving')
  t.match(s.app.tls.status().lastReloadError, CUT_SHORT)
})
