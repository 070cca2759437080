/**
 * The app behind a real haproxy 2.6 that speaks RFC 7239 Forwarded only (set by hand: 2.6 has no
 * `option forwarded`), with TRUST_FORWARDED=true: sessions, the redirect and HSTS work from that
 * header alone; without TRUST_FORWARDED the same proxy gives the classic redirect loop.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { freePort, startApp } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { HAPROXY_FORWARDED_LINES, HAPROXY_X_FORWARDED_PROTO_LINE, startHaproxy } from './helpers/haproxy.ts'
import { parseSetCookie, request } from './helpers/http.ts'
import { startDemo } from './helpers/proxy-process.ts'

const STS = 'strict-transport-security'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

t.test('the demo behind haproxy, trusting Forwarded', async (t) => {
  if (requirePrograms(t, ['haproxy']) === null) return
  const appPort = await freePort()
  const haproxy = await startHaproxy({ upstreamPort: appPort })
  t.teardown(() => haproxy.stop())
  const demo = await startDemo({ PORT: String(appPort), HTTPS_PUBLIC_PORT: String(haproxy.httpsPort), TRUST_FORWARDED: 'true' })
  t.teardown(() => demo.stop())
  const https = { ca: haproxy.ca }

  const login = await request(`${haproxy.httpsUrl}/login`, { ...https, method: 'POST', headers: FORM, body: 'user=carol' })
  t.equal(login.status, 303, 'login over HTTPS through haproxy is accepted: Forwarded proto=https is believed')
  const cookie = parseSetCookie(login.headers['set-cookie']?.[0] ?? '')
  t.equal(cookie.name, '__Host-session')
  t.equal(cookie.attributes.secure, true)
  const me = await request(`${haproxy.httpsUrl}/api/me`, { ...https, headers: { cookie: `${cookie.name}=${cookie.value}` } })
  t.same(JSON.parse(me.body), { user: 'carol' }, 'and the session reads back through haproxy')

  const plain = await request(`${haproxy.httpUrl}/api/me`)
  t.equal(plain.status, 307, 'plain HTTP through haproxy (Forwarded proto=http) is redirected')
  t.equal(plain.headers.location, `${haproxy.httpsUrl}/api/me`)
  const followed = await request(plain.headers.location as string, https)
  t.equal(followed.status, 200, 'once: the HTTPS side answers')
  t.equal((await request(`${haproxy.httpUrl}/healthz`)).status, 200, '/healthz over HTTP answers')

  const spoofed = await request(`${haproxy.httpUrl}/api/me`, { headers: { 'x-forwarded-proto': 'https', forwarded: 'for=1.2.3.4;proto=https' } })
  t.equal(spoofed.status, 307, 'a client claiming https through haproxy\'s HTTP port is redirected: haproxy replaces Forwarded and drops X-Forwarded-Proto')
  t.same(demo.events('proxy.untrusted-forwarded'), [], 'haproxy is trusted: no spoofing events')
  t.same(demo.events('proxy.conflicting-forwarded'), [], 'and no conflict: the client\'s X-Forwarded-Proto never reached the app')

  const direct = await request(`${demo.url}/api/me`, { localAddress: '127.0.0.2', headers: { forwarded: 'proto=https', host: 'localhost' } })
  t.equal(direct.status, 307, 'Forwarded from a peer that is not trusted is ignored')
  const event = await demo.waitFor((line) => line.securityEvent === 'proxy.untrusted-forwarded')
  t.equal(event.remoteAddress, '127.0.0.2')
  t.same(event.headers, ['forwarded'])
})

t.test('request.secure and request.forwarded through haproxy; HSTS on HTTPS only', async (t) => {
  if (requirePrograms(t, ['haproxy']) === null) return
  const s = await startApp({
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['loopback'], forwarded: true },
    httpsRedirect: { exempt: ['/whoami'] },
    hsts: { localhost: true }
  }, (app) => {
    app.get('/whoami', async (request) => ({ secure: request.secure, forwarded: request.forwarded, ip: request.ip, protocol: request.protocol }))
  })
  t.teardown(() => s.close())
  const haproxy = await startHaproxy({ upstreamPort: s.port })
  t.teardown(() => haproxy.stop())

  const viaHttps = await request(`${haproxy.httpsUrl}/whoami`, { ca: haproxy.ca })
  t.same(JSON.parse(viaHttps.body), {
    secure: true,
    forwarded: { for: '127.0.0.1', proto: 'https', host: `localhost:${haproxy.httpsPort}` },
    ip: '127.0.0.1',
    // Fastify's own request.protocol knows only X-Forwarded-Proto: the reason for request.secure.
    protocol: 'http'
  })
  t.equal(viaHttps.headers[STS], 'max-age=31536000', 'HSTS on the HTTPS side')

  const viaHttp = await request(`${haproxy.httpUrl}/whoami`)
  t.same(JSON.parse(viaHttp.body), { secure: false, forwarded: { for: '127.0.0.1', proto: 'http', host: `localhost:${haproxy.httpPort}` }, ip: '127.0.0.1', protocol: 'http' })
  t.notOk(viaHttp.headers[STS], 'no HSTS over plain HTTP')
})

t.test('the failure mode: a Forwarded-only proxy without TRUST_FORWARDED redirects HTTPS to HTTPS', async (t) => {
  if (requirePrograms(t, ['haproxy']) === null) return
  const s = await startApp({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] } }, (app) => {
    app.get('/', async () => 'never reached')
  })
  t.teardown(() => s.close())
  const haproxy = await startHaproxy({ upstreamPort: s.port })
  t.teardown(() => haproxy.stop())
  const res = await request(`${haproxy.httpsUrl}/`, { ca: haproxy.ca })
  t.equal(res.status, 307, 'HTTPS at the proxy, but the app sees plain HTTP and redirects')
  t.match(res.headers.location, /^https:\/\/localhost\//, 'to HTTPS: the browser comes back over HTTPS and is redirected again, forever')

  // The fix without TRUST_FORWARDED: have the proxy set X-Forwarded-Proto as well.
  const fixed = await startHaproxy({ upstreamPort: s.port, xForwardedProto: true })
  t.teardown(() => fixed.stop())
  const ok = await request(`${fixed.httpsUrl}/`, { ca: fixed.ca })
  t.equal(ok.status, 200)
  t.equal(ok.body, 'never reached')
})

t.test('docs/proxy-trust.md shows the haproxy lines these tests run', async (t) => {
  const page = readFileSync(new URL('../docs/proxy-trust.md', import.meta.url), 'utf8')
  for (const line of [...HAPROXY_FORWARDED_LINES, HAPROXY_X_FORWARDED_PROTO_LINE]) {
    t.ok(page.includes(line.replace('PROTO', 'https')), line)
  }
})
