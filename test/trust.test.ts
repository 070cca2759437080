/**
 * `fastify-secure-https trust`, as a user runs it (the built CLI, a HOME of its own), then a real
 * Chromium with no certificate flag at all, reading that HOME's NSS database: the page loads; it
 * still loads after ALLOWED_HOSTS changed (a new leaf from the same CA); `trust --uninstall`
 * takes it away again. The system store is never touched here (`--store nss`); its steps are
 * checked with a recording command runner.
 */
import { execFile } from 'node:child_process'
import { createPublicKey, X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:https'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { loadOrCreateDevCa } from '../tls/dev-ca.ts'
import { installTrust, trustNickname, trustStatus, uninstallTrust, type CommandRunner } from '../tls/trust-store.ts'
import { buildCertificate, generateEcdsaKey, privateKeyPem } from '../tls/x509.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { launchChromium } from './helpers/chromium.ts'
import { requirePrograms } from './helpers/external.ts'

const CLI = fileURLToPath(new URL('../dist/bin/cli.js', import.meta.url))

function cli (args: string[], home: string): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', HOME: home, _TAPJS_PROCESSINFO_COVERAGE_: '0' } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number((error as { code?: number }).code ?? 1), stdout, stderr })
    })
  })
}

/** What Chromium (no certificate flags, this HOME) makes of a URL: the page text, or the net:: error. */
async function visit (t: Test, home: string, url: string, args: string[] = []): Promise<string> {
  const browser = await launchChromium(t, { env: { ...process.env, HOME: home }, args })
  if (browser === null) return 'skipped'
  try {
    const page = await browser.context.newPage()
    try {
      await page.goto(url)
      return (await page.textContent('body')) ?? ''
    } catch (error) {
      return /net::[A-Z_]+/.exec((error as Error).message)?.[0] ?? (error as Error).message
    }
  } finally {
    await browser.close()
  }
}

t.before(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
})

t.test('trust, then Chromium loads https://localhost without an error; also after ALLOWED_HOSTS changed; uninstall undoes it', async (t) => {
  if (requirePrograms(t, ['certutil', 'chromium']) === null) return
  const home = tempDir('secure-https-home-', t)
  const dir = join(tempDir(undefined, t), 'tls')

  const before = await startApp({ tls: { dir } }, (app) => { app.get('/', async () => 'hello before trust') })
  t.teardown(() => before.close())
  t.equal(await visit(t, home, `${before.url}/`), 'net::ERR_CERT_AUTHORITY_INVALID', 'before trust: the development CA is unknown to the browser')

  const trusted = await cli(['trust', '--dir', dir, '--store', 'nss'], home)
  t.equal(trusted.code, 0, trusted.stdout + trusted.stderr)
  t.match(trusted.stdout, /the development CA .*ca\/cert\.pem/)
  t.match(trusted.stdout, new RegExp(`Chromium and Chrome \\(NSS\\): installed \\(${join(home, '.pki', 'nssdb').replace(/[.]/g, '\\.')}\\)`), 'made the NSS database Chromium reads, and installed the CA there')
  t.match(trusted.stdout, /NODE_EXTRA_CA_CERTS=/, 'and says how Node.js can trust it')
  t.notMatch(trusted.stdout, /system store \(/, '--store nss leaves the system store alone')

  t.equal(await visit(t, home, `${before.url}/`), 'hello before trust', 'the same leaf, now trusted through its CA: no certificate flag')
  await before.close()

  // New names: a new leaf from the same CA, on another port.
  const after = await startApp({ tls: { dir }, allowedHosts: ['localhost', 'app.test'] }, (app) => { app.get('/', async () => 'hello after the names changed') })
  t.teardown(() => after.close())
  t.equal(await visit(t, home, `${after.url}/`), 'hello after the names changed', 'ALLOWED_HOSTS changed: the new leaf is trusted at once')
  t.equal(await visit(t, home, `https://app.test:${after.port}/`, ['--host-resolver-rules=MAP app.test 127.0.0.1']), 'hello after the names changed', 'and so is the new name')

  const again = await cli(['trust', '--dir', dir, '--store', 'nss'], home)
  t.match(again.stdout, /Chromium and Chrome \(NSS\): already there/, 'running it twice is harmless')
  const status = await cli(['trust', '--dir', dir, '--status', '--store', 'nss', '--json'], home)
  t.match(JSON.parse(status.stdout), { results: [{ store: 'Chromium and Chrome (NSS)', status: 'present' }] })

  const removed = await cli(['trust', '--uninstall', '--dir', dir, '--store', 'nss'], home)
  t.equal(removed.code, 0)
  t.match(removed.stdout, /Chromium and Chrome \(NSS\): removed/)
  t.equal(await visit(t, home, `${after.url}/`), 'net::ERR_CERT_AUTHORITY_INVALID', 'uninstalled: the browser refuses it again')
})

t.test('the root can only vouch for local names: Chromium refuses a forged leaf for another site', async (t) => {
  if (requirePrograms(t, ['certutil', 'chromium']) === null) return
  const home = tempDir('secure-https-home-', t)
  const dir = join(tempDir(undefined, t), 'tls')
  const ca = await loadOrCreateDevCa(dir)
  const results = await installTrust({ cert: ca.cert, certPath: ca.certPath, stores: ['nss'], home })
  t.same(results.map((result) => result.status), ['installed'])

  const forge = async (name: string): Promise<number> => {
    const keys = await generateEcdsaKey()
    const cert = buildCertificate({
      subject: { commonName: name },
      publicKey: keys.publicKey,
      issuer: { subject: ca.subject, key: ca.key, publicKey: createPublicKey(ca.key) },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      ca: false,
      hosts: [name]
    })
    const server = createServer({ key: privateKeyPem(keys.privateKey), cert }, (_request, response) => response.end(`hello from ${name}`))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
    return (server.address() as { port: number }).port
  }
  const bank = await forge('bank.example.com')
  const local = await forge('shop.test')
  const rules = '--host-resolver-rules=MAP bank.example.com 127.0.0.1, MAP shop.test 127.0.0.1'
  t.equal(await visit(t, home, `https://bank.example.com:${bank}/`, [rules]), 'net::ERR_CERT_INVALID', 'outside the name constraints: refused although the CA is trusted')
  t.equal(await visit(t, home, `https://shop.test:${local}/`, [rules]), 'hello from shop.test', 'the same CA, a local name: trusted')
})

t.test('NSS: every Firefox profile too; a missing certutil is reported with the package to install', async (t) => {
  if (requirePrograms(t, ['certutil']) === null) return
  const home = tempDir('secure-https-home-', t)
  const dir = join(tempDir(undefined, t), 'tls')
  const ca = await loadOrCreateDevCa(dir)
  const profile = join(home, '.mozilla', 'firefox', 'abcd.default-release')
  mkdirSync(profile, { recursive: true })
  await new Promise<void>((resolve, reject) => execFile('certutil', ['-d', `sql:${profile}`, '-N', '--empty-password'], (error) => { error === null ? resolve() : reject(error) }))
  const installed = await installTrust({ cert: ca.cert, certPath: ca.certPath, stores: ['nss'], home })
  t.same(installed.map((result) => [result.store, result.status]), [
    ['Chromium and Chrome (NSS)', 'installed'],
    ['Firefox profile abcd.default-release (NSS)', 'installed']
  ])
  const status = await trustStatus({ cert: ca.cert, certPath: ca.certPath, stores: ['nss'], home })
  t.same(status.map((result) => result.status), ['present', 'present'])
  const listed = await new Promise<string>((resolve) => execFile('certutil', ['-d', `sql:${profile}`, '-L'], (_error, stdout) => resolve(stdout)))
  t.match(listed, new RegExp(`${trustNickname(ca.cert)}\\s+C,,`), 'in Firefox\'s database as a CA for TLS servers only (C,,)')
  const removed = await uninstallTrust({ cert: ca.cert, certPath: ca.certPath, stores: ['nss'], home })
  t.same(removed.map((result) => result.status), ['removed', 'removed'])

  const noCertutil = await installTrust({ cert: ca.cert, certPath: ca.certPath, stores: ['nss'], home, which: async () => null })
  t.equal(noCertutil[0]?.status, 'failed')
  t.match(noCertutil[0]?.detail, /certutil is not installed: apt-get install libnss3-tools/)
  rmSync(join(home, '.pki'), { recursive: true, force: true })
  const none = await trustStatus({ cert: ca.cert, certPath: ca.certPath, stores: ['nss'], home: tempDir('secure-https-home-', t) })
  t.same(none.map((result) => result.status), ['absent'], 'a status never makes a database')
})

/** A command runner that records the commands and answers from a table. */
function recorder (answers: (file: string, args: readonly string[]) => number = () => 0): { run: CommandRunner, calls: string[] } {
  const calls: string[] = []
  return {
    calls,
    run: async (file, args, options) => {
      calls.push(`${options?.interactive === true ? '(tty) ' : ''}${[file, ...args].join(' ')}`)
      return { code: answers(file, args), stdout: '', stderr: '' }
    }
  }
}

t.test('system stores: the commands for macOS and Windows, and Linux without root', async (t) => {
  const dir = join(tempDir(undefined, t), 'tls')
  const ca = await loadOrCreateDevCa(dir)
  const base = { cert: ca.cert, certPath: ca.certPath, stores: ['system'] as const, home: '/Users/dev' }

  const mac = recorder((file, args) => args[0] === 'find-certificate' ? 1 : 0)
  const macResult = await installTrust({ ...base, platform: 'darwin', run: mac.run })
  t.equal(macResult[0]?.status, 'installed')
  t.same(mac.calls, [
    'security find-certificate -a -Z -c fastify-secure-https development CA /Users/dev/Library/Keychains/login.keychain-db',
    `(tty) security add-trusted-cert -r trustRoot -k /Users/dev/Library/Keychains/login.keychain-db ${ca.certPath}`
  ], 'macOS: the login keychain, trusted as a root for this user')

  const win = recorder((_file, args) => args[1] === '-verifystore' ? 1 : 0)
  const winResult = await installTrust({ ...base, platform: 'win32', run: win.run })
  t.equal(winResult[0]?.status, 'installed')
  t.match(win.calls[1], new RegExp(`^\\(tty\\) certutil -user -addstore -f Root ${ca.certPath.replace(/[.]/g, '\\.')}$`), 'Windows: the user Root store')

  const linux = await installTrust({ ...base, platform: 'linux', run: recorder().run, uid: 1000, interactive: false, which: async (program) => program === 'update-ca-certificates' ? '/usr/sbin/update-ca-certificates' : null })
  if (existsSync('/usr/local/share/ca-certificates')) {
    t.equal(linux[0]?.status, 'failed', 'no root and no sudo: nothing is done')
    t.match(linux[0]?.detail, /needs root; run: sudo install -m 644 .*\/usr\/local\/share\/ca-certificates\/fastify-secure-https-development-CA-[0-9A-F]{16}\.crt && sudo update-ca-certificates/)
  } else {
    t.equal(linux[0]?.status, 'skipped')
  }
})

t.test('the trust command in process: usage, status, JSON, a missing CA', async (t) => {
  const { main } = await import('../bin/cli.ts')
  const home = tempDir('secure-https-home-', t)
  const saved = process.env.HOME
  process.env.HOME = home
  t.teardown(() => { process.env.HOME = saved })
  const run = async (args: string[]): Promise<{ code: number, out: string, err: string }> => {
    let out = ''
    let err = ''
    const code = await main(args, { out: (text) => { out += text }, err: (text) => { err += text } })
    return { code, out, err }
  }
  const help = await run(['trust', '--help'])
  t.equal(help.code, 0)
  t.match(help.out, /Usage: fastify-secure-https trust \[options\][\s\S]*--store KIND/)
  t.match((await run(['--help'])).out, /trust +install the local development CA/)
  t.match(await run(['trust', '--uninstall', '--status']), { code: 2, err: /--uninstall and --status cannot be combined/ })
  t.match(await run(['trust', '--store', 'keychain']), { code: 2, err: /--store keychain: use nss or system/ })
  const empty = join(tempDir(undefined, t), 'tls')
  t.match(await run(['trust', '--status', '--dir', empty]), { code: 0, out: /no development CA in .*; nothing to check/ })
  t.match(await run(['trust', '--uninstall', '--dir', empty]), { code: 0, out: /nothing to remove/ })
  if (requirePrograms(t, ['certutil']) === null) return

  const dir = join(tempDir(undefined, t), 'tls')
  const installed = await run(['trust', '--dir', dir, '--store', 'nss', '--json'])
  t.equal(installed.code, 0, installed.err)
  const report = JSON.parse(installed.out) as { ca: { path: string, permitted: { dns: string[] } }, results: Array<{ store: string, status: string }> }
  t.equal(report.ca.path, join(dir, 'ca', 'cert.pem'))
  t.ok(report.ca.permitted.dns.includes('localhost'))
  t.same(report.results.map((result) => [result.store, result.status]), [['Chromium and Chrome (NSS)', 'installed']])
  const status = await run(['trust', '--status', '--dir', dir, '--store', 'nss'])
  t.match(status.out, /Chromium and Chrome \(NSS\): already there/)
  t.notMatch(status.out, /Restart the browser/, 'a status changes nothing, so asks nothing')
  t.match(await run(['trust', '--uninstall', '--dir', dir, '--store', 'nss', '--json']), { code: 0, out: /"status": "removed"/ })
})

t.test('system stores: status and removal commands, and Linux as root', async (t) => {
  const dir = join(tempDir(undefined, t), 'tls')
  const ca = await loadOrCreateDevCa(dir)
  const base = { cert: ca.cert, certPath: ca.certPath, stores: ['system'] as const, home: '/Users/dev' }
  const sha1 = new X509Certificate(ca.cert).fingerprint.replace(/:/g, '')

  const macThere = recorder()
  const listed: CommandRunner = async (file, args, options) => {
    await macThere.run(file, args, options)
    return { code: 0, stdout: args[0] === 'find-certificate' ? `SHA-1 hash: ${sha1}\n` : '', stderr: '' }
  }
  t.equal((await trustStatus({ ...base, platform: 'darwin', run: listed }))[0]?.status, 'present')
  t.equal((await installTrust({ ...base, platform: 'darwin', run: listed }))[0]?.status, 'present', 'already there: nothing added')
  t.equal((await uninstallTrust({ ...base, platform: 'darwin', run: listed }))[0]?.status, 'removed')
  t.ok(macThere.calls.some((call) => call === `security delete-certificate -Z ${sha1} /Users/dev/Library/Keychains/login.keychain-db`), 'removed by its SHA-1 from the login keychain')
  const macFails = await installTrust({ ...base, platform: 'darwin', run: recorder((_file, args) => 1).run })
  t.match(macFails[0], { status: 'failed', detail: /by hand: security add-trusted-cert -r trustRoot/ })

  const serial = new X509Certificate(ca.cert).serialNumber
  const win = recorder()
  t.equal((await trustStatus({ ...base, platform: 'win32', run: win.run }))[0]?.status, 'present')
  t.equal((await uninstallTrust({ ...base, platform: 'win32', run: win.run }))[0]?.status, 'removed')
  t.ok(win.calls.includes(`(tty) certutil -user -delstore Root ${serial}`))
  const winNss = await installTrust({ ...base, stores: ['nss'], platform: 'win32', run: win.run })
  t.match(winNss[0], { status: 'skipped', detail: /Firefox reads the Windows store/ })

  if (existsSync('/usr/local/share/ca-certificates')) {
    const root = recorder()
    const which = async (program: string): Promise<string | null> => program === 'update-ca-certificates' ? '/usr/sbin/update-ca-certificates' : null
    const asRoot = await installTrust({ ...base, platform: 'linux', run: root.run, uid: 0, which })
    t.equal(asRoot[0]?.status, 'installed', 'as root: done without sudo (the commands are recorded here, not run)')
    t.match(root.calls, [new RegExp(`^install -m 644 ${ca.certPath.replace(/[.]/g, '\\.')} /usr/local/share/ca-certificates/fastify-secure-https-development-CA-[0-9A-F]{16}\\.crt$`), /^update-ca-certificates$/])
    const failing = await installTrust({ ...base, platform: 'linux', run: recorder((file) => file === 'update-ca-certificates' ? 1 : 0).run, uid: 0, which })
    t.match(failing[0], { status: 'failed', detail: /update-ca-certificates failed/ })
    t.equal((await uninstallTrust({ ...base, platform: 'linux', run: root.run, uid: 0, which }))[0]?.status, 'absent', 'not there: nothing to remove')
  }
  const nowhere = await trustStatus({ ...base, platform: 'linux', which: async () => null })
  t.match(nowhere[0], { status: 'absent', detail: /no known system store/ })
})
