import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type Server as NetServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkSite, generateSessionKey, type SiteReport } from '../index.ts'
import { main } from '../bin/cli.ts'
import { localVersionSupport, parseCookieFlags, parseHsts } from '../audit/check.ts'
import { generateSelfSigned, loadOrCreateSelfSigned } from '../tls/self-signed.ts'
import { freePort, startApp, tempDir } from './helpers/app.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = join(ROOT, 'dist/bin/cli.js')
const DEMO = join(ROOT, 'dist/examples/demo/server.js')

interface Run { code: number | null, stdout: string, stderr: string }

function cli (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 90_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr })
    })
  })
}

async function inProcess (args: string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, { out: (text) => { stdout += text }, err: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

const statusOf = (report: SiteReport, id: string): string | undefined => report.checks.find((check) => check.id === id)?.status
const failedIds = (report: SiteReport): string[] => report.checks.filter((check) => check.status === 'fail').map((check) => check.id)

function listen (server: HttpServer | NetServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      resolve(typeof address === 'object' && address !== null ? address.port : 0)
    })
  })
}

function close (server: HttpServer | NetServer): Promise<void> {
  if ('closeAllConnections' in server) server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

t.before(() => {
  for (const file of [CLI, DEMO]) if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build first (npm test does)`)
})

const dir = tempDir('secure-https-check-')
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('the demo passes every check', async (t) => {
  const [port, httpPort] = [await freePort(), await freePort()]
  const tlsDir = join(dir, 'demo-tls')
  // Production (permanent redirects, every rule on), with a certificate from a private CA in files.
  const issued = await loadOrCreateSelfSigned(tlsDir, ['app.test'])
  writeFileSync(join(dir, 'demo-cert.pem'), issued.cert)
  writeFileSync(join(dir, 'demo-key.pem'), issued.key, { mode: 0o600 })
  const demo = spawn(process.execPath, [DEMO], {
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      TLS_MODE: 'files',
      TLS_CERT_FILE: join(dir, 'demo-cert.pem'),
      TLS_KEY_FILE: join(dir, 'demo-key.pem'),
      HOST: '127.0.0.1',
      PORT: String(port),
      HTTP_PORT: String(httpPort),
      TLS_DIR: tlsDir,
      SESSION_KEYS: generateSessionKey(),
      // A real name, so that HSTS is sent (never to localhost), and the whole preload policy.
      ALLOWED_HOSTS: 'app.test',
      HSTS_INCLUDE_SUBDOMAINS: 'true',
      HSTS_PRELOAD: 'true'
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise((resolve) => demo.once('exit', resolve))
  t.teardown(async () => {
    demo.kill('SIGTERM')
    await exited
  })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start within 60 s:\n${output}`)), 60_000)
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8')
      // The redirect listener starts just after the app's own port (Fastify's onListen).
      if (output.includes('HTTP to HTTPS redirect listening')) {
        clearTimeout(timer)
        resolve()
      }
    }
    demo.stdout.on('data', onData)
    demo.stderr.on('data', onData)
    demo.once('exit', (code) => reject(new Error(`the demo exited with ${String(code)}:\n${output}`)))
  })
  const ca = issued.ca.certPath
  const url = `https://app.test:${port}`

  const run = await cli(['check', url, '--connect-to', '127.0.0.1', '--http-port', String(httpPort), '--ca', ca])
  t.equal(run.code, 0, run.stdout + run.stderr)
  t.match(run.stdout, /0 errors, 0 warnings, 20 passed, 0 skipped/, 'every check passes')
  t.notMatch(run.stdout, /FAIL|note/)
  t.match(run.stdout, /TLS 1\.0\s+not offered/)
  t.match(run.stdout, /TLS 1\.3\s+offered/)
  t.match(run.stdout, /HTTP\s+http:\/\/app\.test:\d+\/ -> 301 https:\/\/app\.test:\d+\//)

  const json = await inProcess(['check', url, '--json', '--connect-to', '127.0.0.1', '--http-port', String(httpPort), '--ca', ca])
  t.equal(json.code, 0)
  const report = JSON.parse(json.stdout) as SiteReport
  t.same(failedIds(report), [])
  t.equal(report.checks.length, 20)
  t.same(report.protocols.map((probe) => [probe.version, probe.offered]), [['TLSv1', false], ['TLSv1.1', false], ['TLSv1.2', true], ['TLSv1.3', true]])
  t.equal(report.negotiated?.protocol, 'TLSv1.3')
  t.equal(report.certificate?.keyType, 'ec P-256')
  t.ok(report.certificate?.trusted)
  t.ok((report.certificate?.daysLeft ?? 0) > 80, 'a fresh certificate')
  t.same(report.hsts, { header: 'max-age=31536000; includeSubDomains; preload', maxAge: 31536000, includeSubDomains: true, preload: true })
  t.equal(report.redirect.status, 301)
  t.equal(report.redirect.location, `https://app.test:${port}/`)

  const untrusted = await checkSite(url, { connectTo: '127.0.0.1', httpPort })
  t.same(failedIds(untrusted), ['SH-LIVE-010', 'SH-LIVE-022'], 'without --ca the private CA is not trusted, which spoils preload')
  t.match(untrusted.checks.find((check) => check.id === 'SH-LIVE-010')?.message, /not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\).*--ca FILE/)
  const wrongName = await checkSite(`https://other.test:${port}`, { connectTo: '127.0.0.1', httpPort, ca: readFileSync(ca) })
  t.equal(statusOf(wrongName, 'SH-LIVE-011'), 'fail', 'a name the certificate does not cover')
  t.equal(statusOf(wrongName, 'SH-LIVE-010'), 'pass', 'while the chain itself is trusted')
})

t.test('a deliberately bad server: each problem is reported', async (t) => {
  const pair = await generateSelfSigned(['bad.test'])
  const caFile = join(dir, 'bad-ca.pem')
  writeFileSync(caFile, pair.cert)
  // TLS 1.0 and every OpenSSL suite allowed, no HSTS, a cookie without flags, another breaking its prefix.
  const bad = createHttpsServer({ key: pair.key, cert: pair.cert, minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }, (_request, response) => {
    response.setHeader('set-cookie', ['sid=s3cr3t; Path=/', '__Host-pref=dark; Path=/app; Secure; HttpOnly; SameSite=Lax'])
    response.end('<h1>bad</h1>')
  })
  // Plain HTTP serves the page instead of redirecting.
  const plain = createHttpServer((_request, response) => response.end('<h1>bad, in plain text</h1>'))
  const [port, httpPort] = [await listen(bad), await listen(plain)]
  t.teardown(() => Promise.all([close(bad), close(plain)]))
  const url = `https://bad.test:${port}/`

  const run = await cli(['check', url, '--json', '--connect-to', '127.0.0.1', '--http-port', String(httpPort), '--ca', caFile])
  t.equal(run.code, 1, run.stderr)
  const report = JSON.parse(run.stdout) as SiteReport
  t.same(failedIds(report), ['SH-LIVE-002', 'SH-LIVE-003', 'SH-LIVE-007', 'SH-LIVE-020', 'SH-LIVE-022', 'SH-LIVE-030', 'SH-LIVE-031', 'SH-LIVE-040', 'SH-LIVE-041', 'SH-LIVE-042', 'SH-LIVE-043'])
  t.same(report.protocols.map((probe) => [probe.version, probe.offered]), [['TLSv1', true], ['TLSv1.1', true], ['TLSv1.2', true], ['TLSv1.3', true]], 'TLS 1.0 and 1.1 are really tried, and found')
  t.same(report.cookies.map((cookie) => [cookie.name, cookie.secure, cookie.httpOnly, cookie.sameSite, cookie.path]), [['sid', false, false, null, '/'], ['__Host-pref', true, true, 'Lax', '/app']])
  t.notMatch(run.stdout, /s3cr3t/, 'cookie values are not reported')
  t.equal(report.redirect.status, 200)
  t.equal(report.hsts.header, null)
  t.equal(statusOf(report, 'SH-LIVE-010'), 'pass', 'trusted with --ca')
  t.equal(statusOf(report, 'SH-LIVE-021'), 'skip')

  const table = await inProcess(['check', url, '--connect-to', '127.0.0.1', '--http-port', String(httpPort), '--ca', caFile])
  t.equal(table.code, 1)
  t.match(table.stdout, /TLS 1\.0\s+offered \(/)
  t.match(table.stdout, /FAIL\s+error\s+SH-LIVE-002\s+TLS 1\.0 is not offered/)
  t.match(table.stdout, /FAIL\s+error\s+SH-LIVE-020[\s\S]*no Strict-Transport-Security header/)
  t.match(table.stdout, /FAIL\s+error\s+SH-LIVE-040[\s\S]*sid: no Secure flag/)
  t.match(table.stdout, /FAIL\s+error\s+SH-LIVE-043[\s\S]*__Host-pref: __Host- prefix needs Secure, Path=\/ and no Domain/)
  t.match(table.stdout, /FAIL\s+error\s+SH-LIVE-030[\s\S]*answers 200 without a redirect: the page is served in plain text/)
  t.match(table.stdout, /FAIL\s+warning\s+SH-LIVE-007[\s\S]*CBC-mode suite/)
  t.match(table.stdout, /cookies\s+sid: no Secure no HttpOnly no SameSite Path=\//)

  // A local OpenSSL that cannot speak TLS 1.0/1.1 (here: forbidden by its config file) must say
  // so, rather than call the versions "not offered".
  const opensslConf = join(dir, 'no-legacy-openssl.cnf')
  writeFileSync(opensslConf, 'nodejs_conf = nodejs_init\n[nodejs_init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = system_default_sect\n[system_default_sect]\nProtocol = -TLSv1, -TLSv1.1\n')
  const limited = await cli(['check', url, '--connect-to', '127.0.0.1', '--http-port', String(httpPort), '--ca', caFile], { OPENSSL_CONF: opensslConf })
  t.equal(limited.code, 1, 'the other problems still fail the run')
  t.match(limited.stdout, /TLS 1\.0\s+not tested: this machine's OpenSSL cannot speak TLSv1 \(ERR_SSL_NO_PROTOCOLS_AVAILABLE/)
  t.match(limited.stdout, /skip\s+error\s+SH-LIVE-002\s+TLS 1\.0 is not offered: TLS 1\.0: not tested/)
  t.match(limited.stdout, /skip\s+error\s+SH-LIVE-003\s+TLS 1\.1 is not offered: TLS 1\.1: not tested/)
})

t.test('a Strict-Transport-Security header that browsers ignore (a directive twice) fails SH-LIVE-020, over a real socket', async (t) => {
  const pair = await generateSelfSigned(['twice.test'])
  const caFile = join(dir, 'twice-ca.pem')
  writeFileSync(caFile, pair.cert)
  const server = createHttpsServer({ key: pair.key, cert: pair.cert }, (_request, response) => {
    response.setHeader('strict-transport-security', 'max-age=0; max-age=63072000; includeSubDomains; preload')
    response.end('twice')
  })
  const port = await listen(server)
  t.teardown(() => close(server))
  const run = await cli(['check', `https://twice.test:${port}/`, '--json', '--connect-to', '127.0.0.1', '--http-port', String(await freePort()), '--ca', caFile])
  const report = JSON.parse(run.stdout) as SiteReport
  t.equal(statusOf(report, 'SH-LIVE-020'), 'fail', 'no HSTS in effect')
  t.not(statusOf(report, 'SH-LIVE-022'), 'pass', 'and not preload-eligible')
  t.match(report.checks.find((check) => check.id === 'SH-LIVE-020')?.message, /is invalid \(the max-age directive appears twice, so browsers ignore the whole header\)/)
})

t.test('a page no client can read (a 200 KB header): HSTS cannot be confirmed, so SH-LIVE-020 fails, naming why', async (t) => {
  const pair = await generateSelfSigned(['huge.test'])
  const caFile = join(dir, 'huge-ca.pem')
  writeFileSync(caFile, pair.cert)
  const server = createHttpsServer({ key: pair.key, cert: pair.cert }, (_request, response) => {
    response.setHeader('x-padding', 'a'.repeat(200_000))
    response.setHeader('strict-transport-security', 'max-age=31536000')
    response.end('huge')
  })
  const port = await listen(server)
  t.teardown(() => close(server))
  const run = await cli(['check', `https://huge.test:${port}/`, '--json', '--connect-to', '127.0.0.1', '--http-port', String(await freePort()), '--ca', caFile])
  t.equal(run.code, 1, 'the run fails')
  const report = JSON.parse(run.stdout) as SiteReport
  t.equal(statusOf(report, 'SH-LIVE-020'), 'fail')
  t.match(report.checks.find((check) => check.id === 'SH-LIVE-020')?.message, /GET https:\/\/huge\.test:\d+\/ failed: .*the Strict-Transport-Security header could not be read/)
})

t.test('an unreachable port: one clear line, exit 1', async (t) => {
  const port = await freePort()
  const run = await cli(['check', `https://127.0.0.1:${port}`, '--timeout', '3000'])
  t.equal(run.code, 1)
  t.equal(run.stdout, '')
  t.equal(run.stderr, `fastify-secure-https check: cannot connect to 127.0.0.1:${port}: connection refused: nothing listens on 127.0.0.1:${port}; check the port and that the server is running\n`)

  const json = await inProcess(['check', `https://127.0.0.1:${port}`, '--json'])
  t.equal(json.code, 1)
  const report = JSON.parse(json.stdout) as SiteReport
  t.notOk(report.reachable)
  t.equal(statusOf(report, 'SH-LIVE-001'), 'fail')
  t.ok(report.checks.slice(1).every((check) => check.status === 'skip'), 'everything else is skipped')

  const unknown = await checkSite('https://no-such-host.invalid', { timeout: 3000 })
  t.match(unknown.checks[0]?.message, /does not resolve|could not be resolved/)
})

t.test('a port that accepts but never answers: a timeout, not a hang', async (t) => {
  const sockets = new Set<import('node:net').Socket>()
  const silent = createNetServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
  })
  const port = await listen(silent)
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return close(silent)
  })
  const started = Date.now()
  const report = await checkSite(`https://127.0.0.1:${port}`, { timeout: 300 })
  t.ok(Date.now() - started < 10_000, 'gives up in time')
  t.ok(report.reachable, 'TCP connects')
  t.notOk(report.ok)
  t.match(report.checks[0]?.message, /no answer from .* within 300 ms/)
  t.ok(report.protocols.every((probe) => probe.offered === null), 'no version is called offered or not')
})

t.test('a plain HTTP server on the port: "does not speak TLS"', async (t) => {
  const plain = createHttpServer((_request, response) => response.end('plain'))
  const port = await listen(plain)
  t.teardown(() => close(plain))
  const report = await checkSite(`https://127.0.0.1:${port}`, { timeout: 3000 })
  t.equal(statusOf(report, 'SH-LIVE-001'), 'fail')
  t.match(report.checks[0]?.message, /does not speak TLS \(it may be plain HTTP\)/)
})

t.test('the suite\'s own session cookie passes the cookie checks', async (t) => {
  const s = await startApp({ allowedHosts: ['app.test'], secureSession: { keys: [generateSessionKey()] } }, (app) => {
    app.get('/sign-in', async (request) => {
      request.session.set('user', 'alice')
      return 'signed in'
    })
  })
  t.teardown(() => s.close())
  const httpPort = Number(new URL(s.redirectUrl as string).port)
  const report = await checkSite(`https://app.test:${s.port}/sign-in`, { connectTo: '127.0.0.1', ca: s.cert as string, httpPort })
  t.same(report.cookies.map((cookie) => [cookie.name, cookie.secure, cookie.httpOnly, cookie.sameSite?.toLowerCase(), cookie.path, cookie.domain]), [['__Host-session', true, true, 'lax', '/', null]])
  for (const id of ['SH-LIVE-040', 'SH-LIVE-041', 'SH-LIVE-042', 'SH-LIVE-043']) t.equal(statusOf(report, id), 'pass', id)
  t.match(report.checks.find((check) => check.id === 'SH-LIVE-031')?.message, /redirects with 307 .*with 307, a temporary code/, 'a development server redirects temporarily (so browsers do not keep it), which check reports')
  t.equal(report.redirect.location, `https://app.test:${s.port}/sign-in`, 'the redirect keeps the path')
  t.ok(report.ok)
})

t.test('usage errors exit 2', async (t) => {
  const run = await cli(['check'])
  t.equal(run.code, 2)
  t.match(run.stderr, /check needs the URL of the site/)
  for (const [args, message] of [
    [['check', 'http://example.com'], /is not an https:\/\/ URL/],
    [['check', 'not a url'], /is not a URL/],
    [['check', 'https://a.test', 'https://b.test'], /check takes one URL \(got 2\)/],
    [['check', 'https://user:pw@a.test'], /must not carry a user name or password/],
    [['check', 'https://a.test', '--http-port', '80x'], /--http-port must be a whole number from 1 to 65535/],
    [['check', 'https://a.test', '--timeout', '0'], /--timeout must be a whole number/],
    [['check', 'https://a.test', '--ca', join(dir, 'missing.pem')], /--ca .*missing\.pem: no such file/],
    [['check', 'https://a.test', '--ca', join(ROOT, 'package.json')], /holds no PEM certificate/],
    [['check', 'https://a.test', '--connect-to', 'localhost'], /--connect-to localhost is not an IP address/]
  ] as const) {
    const result = await inProcess([...args])
    t.equal(result.code, 2, args.join(' '))
    t.match(result.stderr, message)
  }
})

t.test('parsers and the local OpenSSL', async (t) => {
  t.same(parseHsts('max-age="600"; includeSubDomains; PRELOAD'), { header: 'max-age="600"; includeSubDomains; PRELOAD', maxAge: 600, includeSubDomains: true, preload: true })
  t.equal(parseHsts('includeSubDomains').maxAge, null, 'no max-age, no policy')
  // As browsers read it (RFC 6797 sections 6.1 and 8.1): a directive twice voids the whole header.
  for (const header of ['max-age=0; max-age=63072000; includeSubDomains; preload', 'max-age=1; max-age=1', 'max-age=31536000; includeSubDomains; INCLUDESUBDOMAINS', 'max-age=1e9', 'max-age=-1']) {
    const parsed = parseHsts(header)
    t.same([parsed.maxAge, parsed.includeSubDomains, parsed.preload], [null, false, false], `${header}: no policy`)
    t.match(parsed.invalid, /browsers ignore/, `${header}: says why`)
  }
  t.same(parseHsts('max-age=600;; includeSubDomains;').maxAge, 600, 'empty directives are allowed')
  t.same(parseCookieFlags('a=b; Domain=example.com; Max-Age=60; Expires=Wed, 21 Oct 2026 07:28:00 GMT; secure'), {
    name: 'a', secure: true, httpOnly: false, sameSite: null, path: null, domain: 'example.com', maxAge: '60', expires: 'Wed, 21 Oct 2026 07:28:00 GMT'
  })
  const support = await localVersionSupport()
  t.same([...support.entries()], [['TLSv1', null], ['TLSv1.1', null]], 'this machine\'s OpenSSL speaks TLS 1.0 and 1.1 at security level 0')
})
