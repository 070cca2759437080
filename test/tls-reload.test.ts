/**
 * Hot reload with TLS_MODE=files, over real sockets: the three ways certificates are replaced in
 * production (atomic rename, certbot's symlinks, Kubernetes' `..data` swap), in-place writes, broken
 * new files that must not be served, and connections in flight across a reload. The watcher runs
 * with its default timing, so "within 2 s" is what a user gets.
 */
import t, { type Test } from 'tap'
import { Agent } from 'node:https'
import { mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPki, daysFromNow, served, waitForServed, type Leaf, type TestPki } from './helpers/certs.ts'
import { startApp, tempDir, type StartedApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'

const WITHIN = 2000

let pki: TestPki
t.before(async () => { pki = await createPki() })

function writePair (dir: string, leaf: Leaf, names = { cert: 'cert.pem', key: 'key.pem' }): { certFile: string, keyFile: string } {
  const certFile = join(dir, names.cert)
  const keyFile = join(dir, names.key)
  writeFileSync(certFile, leaf.fullchain)
  writeFileSync(keyFile, leaf.key, { mode: 0o600 })
  return { certFile, keyFile }
}

async function startFiles (t: Test, files: { certFile: string, keyFile: string }): Promise<StartedApp> {
  const s = await startApp({ tls: { mode: 'files', ...files } }, (app) => { app.get('/', async () => ({ ok: true })) })
  t.teardown(() => s.close())
  return s
}

function atomicWrite (path: string, content: string): void {
  const temp = `${path}.tmp-${process.pid}`
  writeFileSync(temp, content)
  renameSync(temp, path)
}

t.test('atomic rename of the certificate and key is served within 2 s', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await pki.leaf()
  const files = writePair(dir, first)
  const s = await startFiles(t, files)
  t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, first.fingerprint, 'serves the first pair')

  const second = await pki.leaf()
  atomicWrite(files.certFile, second.fullchain)
  atomicWrite(files.keyFile, second.key)
  const took = await waitForServed(s.port, second.fingerprint, { ca: pki.root.cert })
  t.ok(took < WITHIN, `new connections get the new certificate after ${took} ms`)
  const status = s.app.tls.status()
  t.equal(status.fingerprint, second.fingerprint, 'status() reports the new certificate')
  t.ok(status.lastReload instanceof Date, 'and when it was reloaded')
  t.equal(status.lastReloadError, null)
  t.equal(s.logs.events('tls.reload-failed').length, 0, 'two renames in a row are not reported as a mismatched pair')
  const response = await request(`${s.url}/`, { ca: pki.root.cert })
  t.equal(response.status, 200, 'the app answers over the new certificate')
})

t.test('certbot: live/ symlinks re-pointed at new archive/ files', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const live = join(dir, 'live', 'example')
  const archive = join(dir, 'archive', 'example')
  mkdirSync(live, { recursive: true })
  mkdirSync(archive, { recursive: true })
  const first = await pki.leaf()
  writePair(archive, first, { cert: 'fullchain1.pem', key: 'privkey1.pem' })
  symlinkSync('../../archive/example/fullchain1.pem', join(live, 'fullchain.pem'))
  symlinkSync('../../archive/example/privkey1.pem', join(live, 'privkey.pem'))
  const s = await startFiles(t, { certFile: join(live, 'fullchain.pem'), keyFile: join(live, 'privkey.pem') })
  t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, first.fingerprint)

  // What `certbot renew` does: new numbered files in archive/, then each live/ link replaced.
  const second = await pki.leaf()
  writePair(archive, second, { cert: 'fullchain2.pem', key: 'privkey2.pem' })
  unlinkSync(join(live, 'fullchain.pem'))
  symlinkSync('../../archive/example/fullchain2.pem', join(live, 'fullchain.pem'))
  unlinkSync(join(live, 'privkey.pem'))
  symlinkSync('../../archive/example/privkey2.pem', join(live, 'privkey.pem'))
  const took = await waitForServed(s.port, second.fingerprint, { ca: pki.root.cert })
  t.ok(took < WITHIN, `served after ${took} ms, no deploy hook or restart`)

  // An in-place write to the symlink's target, in a directory the option does not name.
  const third = await pki.leaf()
  writeFileSync(join(archive, 'fullchain2.pem'), third.fullchain)
  writeFileSync(join(archive, 'privkey2.pem'), third.key)
  const again = await waitForServed(s.port, third.fingerprint, { ca: pki.root.cert })
  t.ok(again < WITHIN, `a write to the link target is seen too (${again} ms)`)
})

t.test('Kubernetes secret volume: the ..data symlink swapped to a new directory', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const mount = (name: string, leaf: Leaf): void => {
    mkdirSync(join(dir, name))
    writePair(join(dir, name), leaf, { cert: 'tls.crt', key: 'tls.key' })
  }
  const first = await pki.leaf()
  mount('..2026_01_01_00_00_00.1', first)
  symlinkSync('..2026_01_01_00_00_00.1', join(dir, '..data'))
  symlinkSync('..data/tls.crt', join(dir, 'tls.crt'))
  symlinkSync('..data/tls.key', join(dir, 'tls.key'))
  const s = await startFiles(t, { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') })
  t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, first.fingerprint)

  // The kubelet's atomic writer: new timestamped directory, ..data_tmp link, rename over ..data,
  // then the old directory is removed.
  const swap = (name: string, old: string): void => {
    symlinkSync(name, join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
    rmSync(join(dir, old), { recursive: true })
  }
  const second = await pki.leaf()
  mount('..2026_02_01_00_00_00.2', second)
  swap('..2026_02_01_00_00_00.2', '..2026_01_01_00_00_00.1')
  const took = await waitForServed(s.port, second.fingerprint, { ca: pki.root.cert })
  t.ok(took < WITHIN, `served after ${took} ms`)

  // A secret update that lost its key: the link dangles. Not applied, reported, old one serving.
  mkdirSync(join(dir, '..2026_03_01_00_00_00.3'))
  writeFileSync(join(dir, '..2026_03_01_00_00_00.3', 'tls.crt'), (await pki.leaf()).fullchain)
  swap('..2026_03_01_00_00_00.3', '..2026_02_01_00_00_00.2')
  const failed = await s.logs.waitFor((line) => line.securityEvent === 'tls.reload-failed', 3000)
  t.match(failed.reason, /TLS_KEY_FILE .*tls\.key does not exist/, 'tls.reload-failed names the missing file')
  t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, second.fingerprint, 'the previous certificate keeps serving')

  // The next good update is picked up: the watcher survived its directory being deleted.
  const fourth = await pki.leaf()
  mount('..2026_04_01_00_00_00.4', fourth)
  swap('..2026_04_01_00_00_00.4', '..2026_03_01_00_00_00.3')
  const recovered = await waitForServed(s.port, fourth.fingerprint, { ca: pki.root.cert })
  t.ok(recovered < WITHIN, `the next valid secret is served after ${recovered} ms`)
  t.equal(s.app.tls.status().lastReloadError, null, 'and the error is cleared')
})

t.test('broken new files keep the old certificate serving; the next valid write is picked up', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await pki.leaf()
  const files = writePair(dir, first)
  const s = await startFiles(t, files)
  const failures = (): number => s.logs.events('tls.reload-failed').length
  const failedWith = async (pattern: RegExp, count: number): Promise<void> => {
    const line = await s.logs.waitFor((l) => l.securityEvent === 'tls.reload-failed' && failures() >= count, 3000)
    t.match(line.reason, pattern, `tls.reload-failed: ${String(line.reason).slice(0, 90)}...`)
    t.equal(line.servingFingerprint, first.fingerprint, 'the event names the certificate still serving')
    t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, first.fingerprint, 'new connections still get the old certificate')
    t.match(s.app.tls.status().lastReloadError, pattern, 'status() reports the error')
  }

  // A certificate whose key was not replaced (or the wrong key file).
  const other = await pki.leaf()
  writeFileSync(files.certFile, other.fullchain)
  await failedWith(/private key does not match/, 1)

  // An expired certificate with its own key.
  const expired = await pki.leaf({ notBefore: daysFromNow(-100), notAfter: daysFromNow(-1) })
  writeFileSync(files.keyFile, expired.key)
  writeFileSync(files.certFile, expired.fullchain)
  await failedWith(/expired on/, 2)

  // Half-written: the writer stalled mid-file.
  const next = await pki.leaf()
  writeFileSync(files.keyFile, next.key)
  writeFileSync(files.certFile, next.fullchain.slice(0, Math.floor(next.fullchain.length / 2)))
  await failedWith(/holds no PEM certificate|cannot be parsed|cut short/, 3)

  // A certificate file that is not a file any more.
  rmSync(files.certFile)
  mkdirSync(files.certFile)
  await failedWith(/is a directory/, 4)
  rmSync(files.certFile, { recursive: true })

  // The writer finishes: picked up.
  writeFileSync(files.certFile, next.fullchain)
  const took = await waitForServed(s.port, next.fingerprint, { ca: pki.root.cert })
  t.ok(took < WITHIN, `the complete pair is served after ${took} ms`)
  t.equal(s.app.tls.status().lastReloadError, null, 'the error is cleared by the successful reload')
  t.equal(failures(), 4, 'each broken state was reported once')
})

t.test('a keep-alive connection in flight keeps working across a reload; new connections get the new certificate', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await pki.leaf()
  const files = writePair(dir, first)
  const s = await startFiles(t, files)
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.root.cert })
  t.teardown(() => agent.destroy())

  const before = await request(`${s.url}/`, { agent, ca: pki.root.cert })
  t.equal(before.status, 200)
  t.equal(before.tls?.certificate.fingerprint256, first.fingerprint)

  const second = await pki.leaf()
  writeFileSync(files.certFile, second.fullchain)
  writeFileSync(files.keyFile, second.key)
  const took = await waitForServed(s.port, second.fingerprint, { ca: pki.root.cert })
  t.ok(took < WITHIN, `in-place write served after ${took} ms`)

  const after = await request(`${s.url}/`, { agent, ca: pki.root.cert })
  t.equal(after.status, 200, 'the old connection still answers')
  t.equal(after.localPort, before.localPort, 'on the same socket')
  t.equal(after.tls?.certificate.fingerprint256, first.fingerprint, 'which keeps the certificate it was opened with')

  const fresh = await request(`${s.url}/`, { ca: pki.root.cert })
  t.equal(fresh.tls?.certificate.fingerprint256, second.fingerprint, 'a new connection gets the new certificate')
  t.not(fresh.localPort, before.localPort)
})

t.test('fastify.tls.reload() applies a change at once and rejects a broken pair', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await pki.leaf()
  const files = writePair(dir, first)
  const s = await startFiles(t, files)

  const unchanged = await s.app.tls.reload()
  t.equal(unchanged.fingerprint, first.fingerprint)
  t.equal(unchanged.lastReload, null, 'nothing changed, nothing reloaded')

  const second = await pki.leaf()
  writeFileSync(files.keyFile, second.key)
  writeFileSync(files.certFile, second.fullchain)
  // Before the watcher's quiet period ends: this is the manual path (SIGHUP in the demo).
  const status = await s.app.tls.reload()
  t.equal(status.fingerprint, second.fingerprint, 'reload() resolves with the new certificate applied')
  const socket = await served(s.port, { ca: pki.root.cert })
  t.equal(socket.fingerprint, second.fingerprint, 'and it is served')

  writeFileSync(files.keyFile, first.key)
  await t.rejects(s.app.tls.reload(), /private key does not match/, 'a mismatched pair rejects')
  t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, second.fingerprint, 'and is not applied')
  t.equal(s.logs.events('tls.reload-failed').length, 1, 'one tls.reload-failed event, not a second one from the watcher')
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(s.logs.events('tls.reload-failed').length, 1, 'the watcher does not report the same broken state again')
  t.ok(s.app.tls.status().lastReloadErrorAt instanceof Date)
})
