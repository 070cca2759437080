/**
 * The first start explains itself: one summary in development with the URL as one types it, the
 * redirect, the certificate, whether the development CA is trusted and how to trust it; the
 * development session key is kept under TLS_DIR so restarts keep the login; no warning for what
 * the user never set.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { statSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { resolveConfig, secureHttps, serverOptions, type SecureHttpsOptions } from '../index.ts'
import { displayHost, displayUrl, startupSummary } from '../plugins/first-start.ts'
import { DEV_SESSION_KEY_FILE, loadOrCreateDevSessionKey } from '../storage/dev-session-key.ts'
import { loadOrCreateDevCa } from '../tls/dev-ca.ts'
import { installTrust } from '../tls/trust-store.ts'
import { generateSelfSigned, issueDevelopmentCertificate } from '../tls/self-signed.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { captureLogs } from './helpers/logs.ts'
import { which } from './helpers/external.ts'

// The summary checks the NSS database of $HOME: give this test a HOME of its own.
const home = tempDir('secure-https-home-')
const realHome = process.env.HOME
process.env.HOME = home
t.teardown(() => { process.env.HOME = realHome })

const summaryOf = async (s: { logs: { waitFor: (p: (line: { msg?: string }) => boolean) => Promise<{ msg?: string, [key: string]: unknown }> } }) =>
  await s.logs.waitFor((line) => /development server ready/.test(String(line.msg)))

t.test('development: one summary with the URLs as typed, the certificate, the CA and how to trust it', async (t) => {
  const s = await startApp({})
  t.teardown(() => s.close())
  const line = await summaryOf(s)
  const text = String(line.msg)
  const status = s.app.tls.status()
  t.match(text, new RegExp(`^fastify-secure-https: development server ready\\n  open +https://localhost:${s.port}\\n`), 'https://localhost:PORT, not 127.0.0.1')
  t.match(text, new RegExp(`redirect +${(s.redirectUrl as string).replace(/[.]/g, '\\.')} -> https://localhost:${s.port} \\(307, not kept by the browser\\)`))
  t.match(text, /cert +issued now by the development CA .*ca\/cert\.pem: the development CA was just made/, 'where the certificate came from')
  t.match(text, new RegExp(`names localhost, 127\\.0\\.0\\.1, ::1; expires \\d{4}-\\d\\d-\\d\\d \\(365 days\\); SHA-256 ${status.fingerprint}`), 'its names, expiry and fingerprint')
  t.match(text, /CA +.*ca\/cert\.pem: NOT trusted yet: run `npx fastify-secure-https trust` once/, 'and how to trust it')
  t.match(text, /sessions +key made now and kept in .*session-key: logins survive restarts/)
  t.match(line.secureHttps, { url: `https://localhost:${s.port}`, certificate: { fingerprint: status.fingerprint }, sessions: 'dev-key' }, 'the same facts as fields, for JSON readers')
  t.equal(s.logs.lines.filter((l) => /development server ready/.test(String(l.msg))).length, 1, 'one summary')
})

t.test('once trusted, the summary says by what', { skip: which('certutil') === null ? 'needs certutil (apt-get install libnss3-tools)' : false }, async (t) => {
  const dir = join(tempDir(undefined, t), 'tls')
  const ca = await loadOrCreateDevCa(dir)
  await installTrust({ cert: ca.cert, certPath: ca.certPath, stores: ['nss'], home })
  const s = await startApp({ tls: { dir } })
  t.teardown(() => s.close())
  const text = String((await summaryOf(s)).msg)
  t.match(text, /CA +.*: trusted by Chromium and Chrome \(NSS\)/)
  t.notMatch(text, /NOT trusted/)
})

t.test('names the CA may not issue for are explained, not silently missing', async (t) => {
  const dir = join(tempDir(undefined, t), 'tls')
  await loadOrCreateDevCa(dir)
  const s = await startApp({ tls: { dir }, allowedHosts: ['localhost', 'myapp.example.com'] })
  t.teardown(() => s.close())
  const text = String((await summaryOf(s)).msg)
  t.match(text, /myapp\.example\.com from ALLOWED_HOSTS: outside the names this CA may issue for .*use a name under \.localhost or \.test/)
  t.notOk(s.app.tls.status().sans.includes('myapp.example.com'))
})

t.test('the development session key: made once (0600), read back at the next start, so the login survives', async (t) => {
  const dir = join(tempDir(undefined, t), 'tls')
  const build = async (): Promise<FastifyInstance> => {
    const config = resolveConfig({ tls: { dir }, httpsRedirect: false })
    const app = Fastify({ ...(await serverOptions(config)) }) as unknown as FastifyInstance
    await app.register(secureHttps, config)
    app.post('/login', async (request) => { request.session.set('user', 'alice'); return 'ok' })
    app.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
    return app
  }
  const first = await build()
  const login = await first.inject({ method: 'POST', url: '/login', headers: { host: 'localhost' } })
  const cookie = String(login.headers['set-cookie']).split(';')[0] as string
  await first.close()
  const keyFile = join(dir, DEV_SESSION_KEY_FILE)
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'readable by its owner only')
  t.equal(Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64').length, 32)

  const second = await build()
  t.teardown(() => second.close())
  const me = await second.inject({ url: '/me', headers: { host: 'localhost', cookie } })
  t.same(me.json(), { user: 'alice' }, 'a restart (node --watch) keeps the developer logged in')

  const all = await Promise.all(Array.from({ length: 5 }, async () => await loadOrCreateDevSessionKey(join(tempDir(undefined, t), 'race'))))
  t.equal(all.filter((k) => k.created).length, 5, 'separate folders, separate keys')
  const shared = join(tempDir(undefined, t), 'shared')
  const raced = await Promise.all(Array.from({ length: 5 }, async () => await loadOrCreateDevSessionKey(shared)))
  t.equal(new Set(raced.map((k) => k.key.toString('hex'))).size, 1, 'processes starting at once share one key')
  writeFileSync(join(shared, DEV_SESSION_KEY_FILE), 'garbage', { mode: 0o600 })
  const replaced = await loadOrCreateDevSessionKey(shared)
  t.equal(replaced.created, true, 'a damaged key file is set aside and replaced')
})

t.test('production: no summary, no key file: SESSION_KEYS is required', async (t) => {
  const dir = join(tempDir(undefined, t), 'tls')
  const pair = await generateSelfSigned(['app.example.com'])
  const certFile = join(dir, '..', 'cert.pem')
  const keyFile = join(dir, '..', 'key.pem')
  writeFileSync(certFile, pair.cert)
  writeFileSync(keyFile, pair.key, { mode: 0o600 })
  const options: SecureHttpsOptions = {
    production: true,
    allowedHosts: ['app.example.com'],
    tls: { mode: 'files', certFile, keyFile, dir },
    secureSession: { keys: [Buffer.from('642561cb4ee6504c2274da5beeeb3f977cbee2c4d1b110877d2834dde5ba624e', 'hex').toString('base64')] },
    httpsRedirect: { port: 0 },
    port: 0
  }
  const config = resolveConfig(options)
  const logs = captureLogs('info')
  const app = Fastify({ logger: logs.logger, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(secureHttps, config)
  await app.listen({ host: '127.0.0.1', port: 0 })
  await logs.waitFor((line) => line.msg === 'HTTP to HTTPS redirect listening')
  t.notOk(logs.lines.some((line) => /development server ready/.test(String(line.msg))), 'no development summary')
  t.throws(() => statSync(join(dir, DEV_SESSION_KEY_FILE)), { code: 'ENOENT' }, 'no development key')
})

t.test('no warning for names the user never set; a leaf from a root in TLS_CA_FILE is a complete chain', async (t) => {
  const dir = tempDir(undefined, t)
  // As mkcert makes them: localhost and 127.0.0.1, no ::1; issued straight by a private root.
  const ca = await loadOrCreateDevCa(join(dir, 'ca-home'))
  const onlyTwo = await issueDevelopmentCertificate({ ...ca, permitted: { dns: ['localhost'], ip: ['127.0.0.0/8'] } }, [])
  writeFileSync(join(dir, 'cert.pem'), onlyTwo.cert)
  writeFileSync(join(dir, 'key.pem'), onlyTwo.key, { mode: 0o600 })
  writeFileSync(join(dir, 'root.pem'), ca.cert)
  const files = { mode: 'files' as const, certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') }

  const plain = await startApp({ tls: { ...files, caFile: join(dir, 'root.pem') } })
  t.teardown(() => plain.close())
  t.same(plain.app.tls.status().sans, ['localhost', '127.0.0.1'])
  t.same(plain.app.tls.status().warnings, [], 'no ::1 warning (a default, never set), no intermediate warning (TLS_CA_FILE issued it)')

  const set = await startApp({ tls: { ...files, caFile: join(dir, 'root.pem') }, allowedHosts: ['localhost', '::1'] })
  t.teardown(() => set.close())
  t.match(set.app.tls.status().warnings.join('\n'), /does not cover ::1 from ALLOWED_HOSTS/, 'a name the user did set is still checked')

  const noRoot = await startApp({ tls: files })
  t.teardown(() => noRoot.close())
  t.match(noRoot.app.tls.status().warnings.join('\n'), /without the intermediates/, 'without TLS_CA_FILE the warning stays')
})

t.test('URLs as people type them', async (t) => {
  t.equal(displayHost('127.0.0.1', ['localhost', '127.0.0.1', '::1']), 'localhost')
  t.equal(displayHost('0.0.0.0', []), 'localhost')
  t.equal(displayHost('127.0.0.1', ['app.test']), 'app.test', 'a loopback listener for a name: the name')
  t.equal(displayHost('192.168.1.5', ['localhost']), '192.168.1.5')
  t.equal(displayHost('::1', ['::1']), '[::1]')
  t.equal(displayUrl('https', 'localhost', 443), 'https://localhost')
  t.equal(displayUrl('http', 'localhost', 8080), 'http://localhost:8080')
  const config = resolveConfig({ tls: { mode: 'off' } })
  const { text } = startupSummary({ config, address: null, tls: null, redirect: null, ca: null, excluded: [], trust: null, session: { source: 'ephemeral' } })
  t.match(text, /open +http:\/\/localhost:3000\n +cert +none: TLS_MODE=off serves plain HTTP/)
  t.match(text, /sessions +a random key for this run only/)
})
