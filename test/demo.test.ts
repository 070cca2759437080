/**
 * The demo as `npm start` runs it (the built dist/examples/demo/server.js in a child process), zero
 * configuration apart from free ports and a temporary TLS_DIR.
 */
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { freePort, tempDir } from './helpers/app.ts'
import { cookieHeader, parseSetCookie, request } from './helpers/http.ts'
import { startDemo } from './helpers/proxy-process.ts'

async function zeroConfigDemo (tlsDir: string) {
  const httpPort = await freePort()
  const demo = await startDemo({ TLS_MODE: 'self-signed', TRUST_PROXY: 'false', HTTP_PORT: String(httpPort), TLS_DIR: tlsDir, SESSION_KEYS: '' })
  // The redirect listener starts just after the app's own port (Fastify's onListen).
  await demo.waitFor((line) => line.msg === 'HTTP to HTTPS redirect listening')
  // What a client trusts: the development CA (the leaf in front, for the SPKI pin of browsers).
  const cert = readFileSync(join(tlsDir, 'self-signed', 'cert.pem'), 'utf8') + readFileSync(join(tlsDir, 'ca', 'cert.pem'), 'utf8')
  return { demo, cert, https: `https://localhost:${demo.port}`, http: `http://localhost:${httpPort}` }
}

t.test('npm start: HTTPS with a generated certificate, HTTP redirecting, login and session', async (t) => {
  const tlsDir = tempDir()
  t.teardown(() => rmSync(tlsDir, { recursive: true, force: true }))
  const { demo, cert, https, http } = await zeroConfigDemo(tlsDir)
  t.teardown(() => demo.stop())

  const redirect = await request(`${http}/any/path?q=1`)
  t.equal(redirect.status, 307, 'a temporary redirect in development')
  t.equal(redirect.headers['cache-control'], 'no-store', 'that the browser does not keep')
  t.equal(redirect.headers.location, `${https}/any/path?q=1`, 'http://localhost:HTTP_PORT/any/path?q=1 goes to the same path over HTTPS')
  const health = await request(`${http}/healthz`)
  t.equal(health.status, 200, '/healthz answers over HTTP for load-balancer probes')
  t.equal(health.body, 'ok')

  const home = await request(`${https}/`, { ca: cert })
  t.equal(home.status, 200)
  t.equal(home.tls?.certificate.asn1Curve, 'prime256v1', 'served with the generated ECDSA certificate')
  t.match(home.body, /Not logged in/)
  t.match(String(home.headers['content-type']), /text\/html/)
  t.notMatch(home.body, /id="logout"/, 'no "Log out" for a visitor who is not logged in')
  t.match(home.body, /<p id="certificate">Certificate: development certificate for localhost, 127\.0\.0\.1, ::1 · expires \d{4}-\d\d-\d\d · .*(trusted|npx fastify-secure-https trust)/, 'the page shows the certificate, its expiry and whether the development CA is trusted')
  t.match(home.body, /<link rel="stylesheet" href="\/style\.css">/)
  const style = await request(`${https}/style.css`, { ca: cert })
  t.equal(style.status, 200)
  t.match(String(style.headers['content-type']), /text\/css/)
  t.match(String(home.headers['content-security-policy']), /style-src 'self'/, 'a stylesheet of its own origin, which the CSP allows')

  const anonymous = await request(`${https}/api/me`, { ca: cert })
  t.same(JSON.parse(anonymous.body), { user: null })

  const login = await request(`${https}/login`, {
    ca: cert,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'user=alice'
  })
  t.equal(login.status, 303)
  t.equal(login.headers.location, '/dashboard')
  const setCookie = (login.headers['set-cookie'] ?? []).map(parseSetCookie).find((c) => c.name === '__Host-session')
  t.ok(setCookie, 'the session cookie is __Host-session')
  t.equal(setCookie?.attributes.secure, true, 'Secure')
  t.equal(setCookie?.attributes.httponly, true, 'HttpOnly')
  t.equal(String(setCookie?.attributes.samesite).toLowerCase(), 'lax', 'SameSite=Lax')
  t.equal(setCookie?.attributes.path, '/', 'Path=/')
  t.notOk(setCookie?.attributes.domain, 'no Domain')
  const cookie = cookieHeader(login)

  const me = await request(`${https}/api/me`, { ca: cert, headers: { cookie } })
  t.same(JSON.parse(me.body), { user: 'alice' }, 'the session set by POST /login is read back by GET /api/me')
  const dashboard = await request(`${https}/dashboard`, { ca: cert, headers: { cookie } })
  t.equal(dashboard.status, 200)
  t.match(dashboard.body, /id="logout"/, '"Log out" once logged in')
  const homeLoggedIn = await request(`${https}/`, { ca: cert, headers: { cookie } })
  t.match(homeLoggedIn.body, /id="logout"/)
  t.notMatch(homeLoggedIn.body, /id="login"/, 'and no login form')
  t.match(dashboard.body, /Welcome, <strong id="user">alice<\/strong>/)
  const noSession = await request(`${https}/dashboard`, { ca: cert })
  t.equal(noSession.status, 303, 'the dashboard sends a visitor without a session to /')

  const json = await request(`${https}/login`, { ca: cert, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"bob"}' })
  t.equal(json.status, 303, 'JSON logins work too')
  const meBob = await request(`${https}/api/me`, { ca: cert, headers: { cookie: cookieHeader(json) } })
  t.same(JSON.parse(meBob.body), { user: 'bob' })

  const xss = await request(`${https}/login`, { ca: cert, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"<script>"}' })
  t.equal(xss.status, 400, 'user names are validated')

  const logout = await request(`${https}/logout`, { ca: cert, method: 'POST', headers: { cookie } })
  t.equal(logout.status, 303)
  t.equal(logout.headers.location, '/')
  const cleared = (logout.headers['set-cookie'] ?? []).map(parseSetCookie).find((c) => c.name === '__Host-session')
  t.ok(cleared, 'logout sets the cookie again')
  t.ok(cleared?.value === '' || cleared?.attributes['max-age'] === '0', 'to nothing, expired')

  const summary = await demo.waitFor((line) => /development server ready/.test(String(line.msg)))
  t.match(String(summary.msg), new RegExp(`open +https://localhost:${demo.port}\n`), 'the summary gives the URL as one types it')
  t.match(String(summary.msg), /sessions +key made now and kept in /, 'and says where the session key is kept')
  t.notOk(demo.lines.some((line) => /SESSION_KEYS is not set/.test(String(line.msg))), 'no ephemeral key in development')
})

t.test('npm start again: the same certificate, and still logged in', async (t) => {
  const tlsDir = tempDir()
  t.teardown(() => rmSync(tlsDir, { recursive: true, force: true }))
  const first = await zeroConfigDemo(tlsDir)
  const a = await request(`${first.https}/healthz`, { ca: first.cert })
  const login = await request(`${first.https}/login`, { ca: first.cert, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"alice"}' })
  const cookie = cookieHeader(login)
  await first.demo.stop()
  const second = await zeroConfigDemo(tlsDir)
  t.teardown(() => second.demo.stop())
  const b = await request(`${second.https}/healthz`, { ca: first.cert })
  t.equal(b.status, 200, 'the restarted demo is trusted with the first certificate')
  t.equal(b.tls?.certificate.fingerprint256, a.tls?.certificate.fingerprint256, 'reused, not regenerated')
  const me = await request(`${second.https}/api/me`, { ca: first.cert, headers: { cookie } })
  t.same(JSON.parse(me.body), { user: 'alice' }, 'the session cookie of the first run is read by the second: the development key is kept in TLS_DIR')
  const summary = await second.demo.waitFor((line) => /development server ready/.test(String(line.msg)))
  t.match(String(summary.msg), /cert +reused from /, 'the summary says the certificate was reused')
})

t.test('the demo\'s terminal logs: one readable line per JSON line, the summary as it is written', async (t) => {
  const { prettyLine } = await import('../examples/demo/pretty.ts')
  const time = Date.UTC(2026, 11, 1, 9, 30, 5)
  const line = prettyLine(JSON.stringify({ level: 30, time, pid: 1, hostname: 'h', msg: 'HTTP to HTTPS redirect listening', port: 8080, host: '127.0.0.1' }), false)
  t.match(line, /^\d\d:\d\d:\d\d INFO {2}HTTP to HTTPS redirect listening port=8080 host=127\.0\.0\.1$/, 'time, level, message, then the fields; no pid or hostname')
  const summary = prettyLine(JSON.stringify({ level: 30, time, msg: 'fastify-secure-https: development server ready\n  open       https://localhost:8443', secureHttps: { url: 'https://localhost:8443' } }), false)
  t.match(summary, /development server ready\n {2}open {7}https:\/\/localhost:8443$/, 'the multi-line summary is printed as written, its fields left out')
  t.match(prettyLine(JSON.stringify({ level: 50, time, msg: 'failed', err: { message: 'boom', stack: 'Error: boom\n    at x' } }), false), /ERROR failed\nError: boom\n {4}at x$/, 'an error with its stack')
  t.ok(prettyLine(JSON.stringify({ level: 40, time, msg: 'careful' }), true).includes('\u001b[33mWARN '), 'levels in colour on a terminal that has them')
  t.equal(prettyLine('not json', false), 'not json', 'anything else passes through')

  const { prettyStream } = await import('../examples/demo/pretty.ts')
  let written = ''
  const terminal = { hasColors: () => false, write: (text: string) => { written += text; return true } } as unknown as NodeJS.WriteStream
  const stream = prettyStream(terminal)
  const first = JSON.stringify({ level: 30, time, msg: 'one' })
  await new Promise<void>((resolve) => stream.write(`${first.slice(0, 10)}`, () => resolve()))
  t.equal(written, '', 'half a line waits for the rest')
  await new Promise<void>((resolve) => stream.write(`${first.slice(10)}\n${JSON.stringify({ level: 30, time, msg: 'two' })}\n`, () => resolve()))
  t.match(written, /^\d\d:\d\d:\d\d INFO {2}one\n\d\d:\d\d:\d\d INFO {2}two\n$/, 'then each line comes out whole')
})
