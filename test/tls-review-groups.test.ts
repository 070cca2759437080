/**
 * Key exchange groups: the hybrid post-quantum group X25519MLKEM768 is offered first where Node's
 * OpenSSL has it (OpenSSL 3.5, Node 24), over real handshakes, at construction and after a reload
 * (setSecureContext); where it does not (OpenSSL 3.0, Node 22.12), the classic groups still work.
 */
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { connect, createSecureContext, type EphemeralKeyInfo } from 'node:tls'
import t from 'tap'
import { CLASSIC_GROUPS, ecdhCurves, HYBRID_GROUP } from '../tls/profiles.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { createPki, served, type TestPki } from './helpers/certs.ts'
import { requirePrograms, which } from './helpers/external.ts'

/** True when this process's OpenSSL knows the hybrid group. */
function nodeHasHybrid (): boolean {
  try {
    createSecureContext({ ecdhCurve: HYBRID_GROUP })
    return true
  } catch {
    return false
  }
}

/** The group a client limited to `groups` negotiates, or the handshake's error. */
async function negotiated (port: number, ca: string, groups?: string): Promise<string> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...(groups === undefined ? {} : { ecdhCurve: groups }) })
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')))
    socket.once('secureConnect', () => {
      const info = socket.getEphemeralKeyInfo() as EphemeralKeyInfo | null
      socket.end()
      resolve(info?.name ?? 'unknown')
    })
    socket.once('error', (error) => resolve(`error: ${error.message}`))
  })
}

let pki: TestPki
let dir: string
t.before(async () => {
  pki = await createPki()
  dir = tempDir()
})
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('the group list follows the OpenSSL in use', async (t) => {
  if (nodeHasHybrid()) t.equal(ecdhCurves(), `${HYBRID_GROUP}:${CLASSIC_GROUPS}`, `OpenSSL ${process.versions.openssl}: X25519MLKEM768 first`)
  else t.equal(ecdhCurves(), CLASSIC_GROUPS, `OpenSSL ${process.versions.openssl}: the classic groups alone`)
  t.equal(ecdhCurves(), ecdhCurves(), 'found once')
})

for (const profile of ['intermediate', 'modern'] as const) {
  t.test(`${profile}: a client offering only X25519MLKEM768 completes the handshake, before and after a reload`, { skip: nodeHasHybrid() ? false : `Node's OpenSSL ${process.versions.openssl} has no X25519MLKEM768` }, async (t) => {
    const first = await pki.leaf({ kind: 'ec' })
    const certFile = join(dir, `${profile}-cert.pem`)
    const keyFile = join(dir, `${profile}-key.pem`)
    writeFileSync(certFile, first.fullchain)
    writeFileSync(keyFile, first.key)
    const s = await startApp({ tls: { mode: 'files', certFile, keyFile, profile }, httpsRedirect: false })
    t.teardown(() => s.close())
    t.equal(await negotiated(s.port, pki.root.cert, HYBRID_GROUP), HYBRID_GROUP, 'X25519MLKEM768 alone')
    t.equal(await negotiated(s.port, pki.root.cert), HYBRID_GROUP, 'and chosen when the client offers its defaults')
    t.equal(await negotiated(s.port, pki.root.cert, 'X25519'), 'X25519', 'X25519 alone still works')
    t.match(await negotiated(s.port, pki.root.cert, 'X448'), /^error: /, 'a group outside the list is still refused')

    // A reload goes through setSecureContext(), which rebuilds the context from its options alone.
    const next = await pki.leaf({ kind: 'ec' })
    writeFileSync(keyFile, next.key)
    writeFileSync(certFile, next.fullchain)
    await s.app.tls.reload()
    t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, next.fingerprint, 'reloaded')
    t.equal(await negotiated(s.port, pki.root.cert, HYBRID_GROUP), HYBRID_GROUP, 'X25519MLKEM768 after the reload too')
  })
}

/** Why s_client cannot try X25519MLKEM768 here, or false. */
function sClientSkip (): string | false {
  const openssl = which('openssl')
  if (openssl === null) return false // requirePrograms says so (and fails under CI)
  if (!nodeHasHybrid()) return `Node's OpenSSL ${process.versions.openssl} has no X25519MLKEM768`
  const version = spawnSync(openssl, ['version'], { encoding: 'utf8' }).stdout.trim()
  const kems = spawnSync(openssl, ['list', '-kem-algorithms'], { encoding: 'utf8' }).stdout
  return /MLKEM768/i.test(kems) ? false : `${version} has no ML-KEM (OpenSSL 3.5 or later has); the Node client above covers the handshake`
}

t.test('openssl s_client -groups X25519MLKEM768 completes the handshake', { skip: sClientSkip() }, async (t) => {
  const bins = requirePrograms(t, ['openssl'])
  if (bins === null) return
  const openssl = bins.openssl as string
  const leaf = await pki.leaf({ kind: 'ec' })
  const certFile = join(dir, 's_client-cert.pem')
  const keyFile = join(dir, 's_client-key.pem')
  writeFileSync(certFile, leaf.fullchain)
  writeFileSync(keyFile, leaf.key)
  const s = await startApp({ tls: { mode: 'files', certFile, keyFile }, httpsRedirect: false })
  t.teardown(() => s.close())
  const output = await new Promise<string>((resolve) => {
    const child = execFile(openssl, ['s_client', '-connect', `127.0.0.1:${s.port}`, '-servername', 'localhost', '-groups', HYBRID_GROUP], { timeout: 10_000 }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`))
    child.stdin?.end()
  })
  t.match(output, /Cipher is (?!\(NONE\))/, 'handshake done')
  t.match(output, /X25519MLKEM768/, 'over X25519MLKEM768')
})

/** Node 22.12 (OpenSSL 3.0), the oldest Node the package supports: NODE22 or the local toolchain. */
function node22 (): string | null {
  const candidates = [process.env.NODE22, join(homedir(), '.cache', 'fastify-secure-https', 'node', '22.12.0', 'node_modules', '.bin', 'node')]
  return candidates.find((path) => path !== undefined && path !== '' && existsSync(path)) ?? null
}

t.test('Node 22.12 (OpenSSL 3.0, no X25519MLKEM768): the profile still makes a context and completes a handshake', { skip: node22() === null ? 'no Node 22.12 here (set NODE22 to its node binary)' : false }, async (t) => {
  const bin = node22() as string
  const leaf = await pki.leaf({ kind: 'ec' })
  const script = `
    import { createServer, connect } from 'node:tls'
    import { secureContextOptions } from ${JSON.stringify(join(import.meta.dirname, '..', 'tls', 'profiles.ts'))}
    const pair = ${JSON.stringify({ key: leaf.key, cert: leaf.fullchain })}
    const options = secureContextOptions('intermediate', [], pair)
    const server = createServer(options, (socket) => socket.end())
    server.listen(0, '127.0.0.1', () => {
      const socket = connect({ host: '127.0.0.1', port: server.address().port, servername: 'localhost', ca: ${JSON.stringify(pki.root.cert)} }, () => {
        console.log(JSON.stringify({ openssl: process.versions.openssl, groups: options.ecdhCurve, group: socket.getEphemeralKeyInfo().name }))
        socket.end()
        server.close()
      })
      socket.on('error', (error) => { console.log(JSON.stringify({ error: error.message })); server.close() })
    })
  `
  const run = spawnSync(bin, ['--experimental-strip-types', '--no-warnings', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 })
  t.equal(run.status, 0, run.stderr)
  const result = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { openssl?: string, groups?: string, group?: string, error?: string }
  t.match(result.openssl, /^3\.0\./, 'OpenSSL 3.0')
  t.equal(result.groups, CLASSIC_GROUPS, 'the classic groups alone')
  t.equal(result.group, 'X25519', 'the handshake is done over X25519')
})
