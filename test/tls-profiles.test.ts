/**
 * The TLS profiles as an outside scanner sees them: sslscan (every suite and group, under a second)
 * and testssl (protocols), for both profiles, with an RSA certificate (the only kind with which RSA
 * key exchange could be negotiated at all) and with the default ECDSA one, before and after a
 * certificate reload. A server with Node's defaults is scanned first, to show the checks catch what
 * they look for.
 */
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer, type Server } from 'node:tls'
import { promisify } from 'node:util'
import { INTERMEDIATE_TLS12_SUITES, TLS13_SUITES } from '../tls/profiles.ts'
import { createPki, served, type TestPki } from './helpers/certs.ts'
import { startApp, tempDir, type StartedApp } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'

const run = promisify(execFile)

interface Scan {
  protocols: Record<string, boolean>
  ciphers: Array<{ version: string, name: string }>
  groups: string[]
}

async function sslscan (bin: string, port: number): Promise<Scan> {
  const { stdout } = await run(bin, ['--no-colour', '--xml=-', '--sni-name=localhost', `127.0.0.1:${port}`], { timeout: 20_000, maxBuffer: 4 << 20 })
  const protocols: Record<string, boolean> = {}
  for (const m of stdout.matchAll(/<protocol type="(\w+)" version="([\d.]+)" enabled="(\d)"/g)) protocols[`${m[1]}${m[2]}`] = m[3] === '1'
  const ciphers = [...stdout.matchAll(/<cipher status="\w+" sslversion="([^"]+)"[^>]* cipher="([^"]+)"/g)].map((m) => ({ version: m[1] as string, name: m[2] as string }))
  const groups = [...stdout.matchAll(/<group [^>]*name="([^"]+)"/g)].map((m) => m[1] as string)
  return { protocols, ciphers, groups }
}

const ALLOWED = new Set<string>([...TLS13_SUITES, ...INTERMEDIATE_TLS12_SUITES])

/** Everything a scan shows that the profiles forbid. */
function problems (scan: Scan): string[] {
  const found: string[] = []
  for (const old of ['ssl2', 'ssl3', 'tls1.0', 'tls1.1']) if (scan.protocols[old] !== false) found.push(`${old} not refused`)
  for (const { version, name } of scan.ciphers) {
    if (version === 'TLSv1.3') continue
    if (!/GCM|CHACHA20/.test(name)) found.push(`CBC or other non-AEAD suite ${name}`)
    if (!name.startsWith('ECDHE-')) found.push(`no forward secrecy (RSA/DHE/PSK key exchange): ${name}`)
    if (/3DES|DES-CBC|RC4|NULL|EXP/.test(name)) found.push(`broken cipher ${name}`)
    if (!ALLOWED.has(name)) found.push(`suite outside the profile: ${name}`)
  }
  for (const group of scan.groups) {
    if (!/x25519|secp256r1|secp384r1|X25519MLKEM768/.test(group)) found.push(`key exchange group outside the profile: ${group}`)
  }
  return found
}

let pki: TestPki
let dir: string
t.before(async () => {
  pki = await createPki()
  dir = tempDir()
})
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

async function startWith (t: Test, profile: 'intermediate' | 'modern', kind: 'ec' | 'rsa2048'): Promise<StartedApp & { certFile: string, keyFile: string }> {
  const leaf = await pki.leaf({ kind })
  const certFile = join(dir, `${profile}-${kind}-cert.pem`)
  const keyFile = join(dir, `${profile}-${kind}-key.pem`)
  writeFileSync(certFile, leaf.fullchain)
  writeFileSync(keyFile, leaf.key)
  const s = await startApp({ tls: { mode: 'files', certFile, keyFile, profile }, httpsRedirect: false }, (app) => { app.get('/', async () => 'ok') })
  t.teardown(() => s.close())
  return { ...s, certFile, keyFile }
}

t.test('sslscan: the checks flag a server left with Node\'s defaults (control)', async (t) => {
  const bins = requirePrograms(t, ['sslscan'])
  if (bins === null) return
  const leaf = await pki.leaf({ kind: 'rsa2048' })
  const server: Server = createServer({ key: leaf.key, cert: leaf.fullchain }, (socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const port = (server.address() as { port: number }).port
  const found = problems(await sslscan(bins.sslscan as string, port))
  t.ok(found.some((p) => p.startsWith('CBC')), 'Node\'s default list offers CBC suites')
  t.ok(found.some((p) => p.startsWith('no forward secrecy')), 'and RSA key exchange')
})

for (const profile of ['intermediate', 'modern'] as const) {
  t.test(`sslscan: ${profile} profile offers only what Mozilla's ${profile} configuration allows`, async (t) => {
    const bins = requirePrograms(t, ['sslscan'])
    if (bins === null) return
    for (const kind of ['rsa2048', 'ec'] as const) {
      const s = await startWith(t, profile, kind)
      const scan = await sslscan(bins.sslscan as string, s.port)
      t.same(problems(scan), [], `${kind}: no SSLv3, TLS 1.0/1.1, CBC, RSA key exchange, 3DES/RC4, or foreign groups`)
      t.equal(scan.protocols['tls1.3'], true, `${kind}: TLS 1.3 offered`)
      t.equal(scan.protocols['tls1.2'], profile === 'intermediate', `${kind}: TLS 1.2 ${profile === 'intermediate' ? 'offered' : 'not offered'}`)
      const tls12 = scan.ciphers.filter((c) => c.version === 'TLSv1.2').map((c) => c.name).sort()
      const expected = profile === 'modern' ? [] : INTERMEDIATE_TLS12_SUITES.filter((name) => name.includes(kind === 'ec' ? 'ECDSA' : '-RSA-')).sort()
      t.same(tls12, expected, `${kind}: TLS 1.2 suites are exactly ${expected.length === 0 ? 'none' : expected.join(', ')}`)
      t.same(scan.ciphers.filter((c) => c.version === 'TLSv1.3').map((c) => c.name).sort(), [...TLS13_SUITES].sort(), `${kind}: the three TLS 1.3 suites`)
      t.ok(scan.groups.some((g) => g.includes('x25519')), `${kind}: X25519 offered`)

      if (kind === 'rsa2048') {
        // A reload goes through setSecureContext(), which rebuilds the context from its options alone.
        const next = await pki.leaf({ kind })
        writeFileSync(s.keyFile, next.key)
        writeFileSync(s.certFile, next.fullchain)
        await s.app.tls.reload()
        t.equal((await served(s.port, { ca: pki.root.cert })).fingerprint, next.fingerprint, 'reloaded')
        const after = await sslscan(bins.sslscan as string, s.port)
        t.same(problems(after), [], 'after a reload the profile still holds')
        t.equal(after.protocols['tls1.2'], profile === 'intermediate', 'and the protocol range too')
      }
      await s.close()
    }
  })
}

t.test('openssl s_client: single forbidden handshakes are refused', async (t) => {
  const bins = requirePrograms(t, ['openssl'])
  if (bins === null) return
  const s = await startWith(t, 'intermediate', 'rsa2048')
  const attempt = (args: string[]): Promise<boolean> => new Promise((resolve) => {
    const child = execFile(bins.openssl as string, ['s_client', '-connect', `127.0.0.1:${s.port}`, '-servername', 'localhost', ...args], { timeout: 10_000 }, (_error, stdout) => {
      resolve(/Cipher is (?!\(NONE\))/.test(stdout))
    })
    // EOF on stdin makes s_client close right after the handshake.
    child.stdin?.end()
  })
  t.equal(await attempt(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']), true, 'ECDHE-RSA-AES128-GCM-SHA256 over TLS 1.2 works (the probe can succeed)')
  t.equal(await attempt(['-tls1_2', '-cipher', 'AES128-GCM-SHA256']), false, 'RSA key exchange refused, even with GCM')
  t.equal(await attempt(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA']), false, 'CBC refused, even with ECDHE')
  t.equal(await attempt(['-tls1_2', '-cipher', 'AES128-SHA']), false, 'TLS_RSA_WITH_AES_128_CBC_SHA refused')
  t.equal(await attempt(['-tls1_1']), false, 'TLS 1.1 refused')
  t.equal(await attempt(['-tls1_2', '-curves', 'X448']), false, 'a curve outside X25519, P-256, P-384 is refused')
})

t.test('testssl: protocols of both profiles', async (t) => {
  const bins = requirePrograms(t, ['testssl'])
  if (bins === null) return
  // Both scans at once: testssl spends most of its time waiting on its own probes.
  const results = await Promise.all((['intermediate', 'modern'] as const).map(async (profile) => {
    const s = await startWith(t, profile, 'rsa2048')
    const out = join(dir, `testssl-${profile}.json`)
    await run(bins.testssl as string, ['-p', '--jsonfile', out, '--warnings', 'off', '--quiet', '--color', '0', '--nodns', 'min', `127.0.0.1:${s.port}`], { timeout: 120_000 })
      .catch((error: { code?: number }) => { if (typeof error.code !== 'number') throw error })
    return { profile, findings: JSON.parse(readFileSync(out, 'utf8')) as Array<{ id: string, finding: string }> }
  }))
  for (const { profile, findings } of results) {
    const finding = (id: string): string => findings.find((f) => f.id === id)?.finding ?? '(missing)'
    for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) t.match(finding(id), /^not offered/, `${profile}: ${id} not offered`)
    t.match(finding('TLS1_3'), /^offered/, `${profile}: TLS 1.3 offered`)
    if (profile === 'modern') t.match(finding('TLS1_2'), /^not offered/, 'modern: TLS 1.2 not offered')
    else t.match(finding('TLS1_2'), /^offered/, 'intermediate: TLS 1.2 offered')
  }
})
