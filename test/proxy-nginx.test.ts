/**
 * The demo behind a real nginx terminating TLS (TLS_MODE=proxy, TRUST_PROXY=127.0.0.1): sessions
 * survive the proxy, plain HTTP is redirected once, HSTS goes out on HTTPS only, and a client that
 * skips the proxy cannot pose as HTTPS.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { freePort } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { parseSetCookie, request, type RequestOptions, type Response } from './helpers/http.ts'
import { NGINX_PROXY_HEADERS, startNginx, type Nginx } from './helpers/nginx.ts'
import { startDemo, type DemoProcess } from './helpers/proxy-process.ts'

const STS = 'strict-transport-security'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/** Follows redirects (at most 5), counting them; a loop shows up as 5 and the last 30x. */
async function follow (url: string, options: RequestOptions): Promise<{ final: Response, hops: string[] }> {
  const hops: string[] = []
  let response = await request(url, options)
  while (response.status >= 300 && response.status < 400 && typeof response.headers.location === 'string' && hops.length < 5) {
    const next = new URL(response.headers.location, url).href
    hops.push(`${response.status} ${next}`)
    response = await request(next, { ...options, method: response.status === 303 ? 'GET' : options.method, body: response.status === 303 ? undefined : options.body })
  }
  return { final: response, hops }
}

t.test('the demo behind nginx', async (t) => {
  if (requirePrograms(t, ['nginx']) === null) return
  const appPort = await freePort()
  const nginx: Nginx = await startNginx({ upstreamPort: appPort, hosts: ['app.test'] })
  t.teardown(() => nginx.stop())
  const demo: DemoProcess = await startDemo({
    PORT: String(appPort),
    HTTPS_PUBLIC_PORT: String(nginx.httpsPort),
    // app.test: a name that is not localhost, which HSTS skips by default.
    ALLOWED_HOSTS: 'localhost,app.test'
  })
  t.teardown(() => demo.stop())
  const https = { ca: nginx.ca }

  t.test('login over HTTPS through nginx sets a Secure __Host- cookie that reads back through nginx', async (t) => {
    const login = await request(`${nginx.httpsUrl}/login`, { ...https, method: 'POST', headers: FORM, body: 'user=alice' })
    t.equal(login.tls?.protocol !== undefined && login.tls.protocol !== null, true, 'the client spoke TLS to nginx')
    t.equal(login.status, 303, 'the login is accepted, not redirected as plain HTTP')
    t.equal(login.headers.location, '/dashboard')
    const cookies = (login.headers['set-cookie'] ?? []).map(parseSetCookie)
    t.equal(cookies.length, 1, 'one session cookie')
    const cookie = cookies[0]
    t.equal(cookie?.name, '__Host-session', 'the __Host- prefix: Secure, Path=/, no Domain')
    t.equal(cookie?.attributes.secure, true, 'Secure')
    t.equal(cookie?.attributes.httponly, true, 'HttpOnly')
    t.equal(cookie?.attributes.path, '/')
    t.equal(cookie?.attributes.domain, undefined)
    const pair = `${cookie?.name ?? ''}=${cookie?.value ?? ''}`

    const me = await request(`${nginx.httpsUrl}/api/me`, { ...https, headers: { cookie: pair } })
    t.equal(me.status, 200)
    t.same(JSON.parse(me.body), { user: 'alice' }, 'the session is read back on the next request through the proxy')
    const dashboard = await request(`${nginx.httpsUrl}/dashboard`, { ...https, headers: { cookie: pair } })
    t.equal(dashboard.status, 200)
    t.match(dashboard.body, /Welcome, <strong id="user">alice<\/strong>/)
    t.same(demo.events('proxy.untrusted-forwarded').filter((line) => line.remoteAddress !== '127.0.0.2'), [], 'nginx is trusted: no spoofing events for its requests')
  })

  t.test('plain HTTP through nginx gets one redirect to HTTPS, not a loop; /healthz answers', async (t) => {
    const get = await follow(`${nginx.httpUrl}/api/me?x=1`, https)
    t.same(get.hops, [`307 ${nginx.httpsUrl}/api/me?x=1`], 'exactly one redirect, to nginx\'s HTTPS port')
    t.equal(get.final.status, 200)
    t.same(JSON.parse(get.final.body), { user: null })

    const post = await follow(`${nginx.httpUrl}/login`, { ...https, method: 'POST', headers: FORM, body: 'user=bob' })
    t.equal(post.hops[0], `307 ${nginx.httpsUrl}/login`, 'POST gets 307 in development: method and body kept')
    t.equal(post.hops.length, 3, '307 to HTTPS, then the login\'s 303 to /dashboard and its 303 to / (no cookie jar here)')

    const health = await request(`${nginx.httpUrl}/healthz`)
    t.equal(health.status, 200, '/healthz over HTTP answers, for load-balancer probes')
    t.equal(health.body, 'ok')

    const spoofed = await request(`${nginx.httpUrl}/api/me`, { headers: { 'x-forwarded-proto': 'https', forwarded: 'proto=https', 'x-forwarded-host': 'evil.example' } })
    t.equal(spoofed.status, 307, 'a client claiming https through nginx\'s HTTP port is still redirected: nginx replaces the header')
    t.equal(spoofed.headers.location, `${nginx.httpsUrl}/api/me`, 'and X-Forwarded-Host from the client is replaced too')

    const evil = await request(`${nginx.httpUrl}/`, { headers: { host: 'evil.example' } })
    t.equal(evil.status, 400, 'a Host outside ALLOWED_HOSTS is refused, not redirected')
    t.notOk(evil.headers.location)
  })

  t.test('HSTS on proxied HTTPS responses only', async (t) => {
    const secure = await request(`${nginx.httpsUrl}/`, { ...https, headers: { host: 'app.test' }, servername: 'app.test' })
    t.equal(secure.status, 200)
    t.equal(secure.headers[STS], 'max-age=31536000', 'HTTPS through nginx: HSTS')
    const secureHealth = await request(`${nginx.httpsUrl}/healthz`, { ...https, headers: { host: 'app.test' }, servername: 'app.test' })
    t.equal(secureHealth.headers[STS], 'max-age=31536000')

    const plainHealth = await request(`${nginx.httpUrl}/healthz`, { headers: { host: 'app.test' } })
    t.equal(plainHealth.status, 200)
    t.notOk(plainHealth.headers[STS], 'plain HTTP through nginx: no HSTS (RFC 6797 7.2)')
    const plainRedirect = await request(`${nginx.httpUrl}/`, { headers: { host: 'app.test' } })
    t.equal(plainRedirect.status, 307)
    t.equal(plainRedirect.headers.location, `https://app.test:${nginx.httpsPort}/`)
    t.notOk(plainRedirect.headers[STS], 'nor on the redirect')
  })

  t.test('a client that skips nginx cannot pose as HTTPS, and is logged', async (t) => {
    const spoof = { 'x-forwarded-proto': 'https', forwarded: 'proto=https' }
    const me = await request(`${demo.url}/api/me`, { localAddress: '127.0.0.2', headers: { ...spoof, host: 'localhost' } })
    t.equal(me.status, 307, 'treated as plain HTTP: redirected')
    t.equal(me.headers.location, `${nginx.httpsUrl}/api/me`)

    const login = await request(`${demo.url}/login`, { localAddress: '127.0.0.2', method: 'POST', headers: { ...spoof, ...FORM, host: 'localhost' }, body: 'user=mallory' })
    t.equal(login.status, 307, 'no login over a spoofed HTTPS')
    t.notOk(login.headers['set-cookie'], 'and no session cookie')

    const health = await request(`${demo.url}/healthz`, { localAddress: '127.0.0.2', headers: { ...spoof, host: 'app.test' } })
    t.equal(health.status, 200)
    t.notOk(health.headers[STS], 'no HSTS: the request is not secure')

    const event = await demo.waitFor((line) => line.securityEvent === 'proxy.untrusted-forwarded' && line.remoteAddress === '127.0.0.2')
    t.equal(event.level, 40, 'logged at warn')
    t.same(event.headers, ['x-forwarded-proto', 'forwarded'], 'naming the headers that were ignored')

    // The same headers from the trusted address are believed: the difference is the peer, not the header.
    const trusted = await request(`${demo.url}/api/me`, { localAddress: '127.0.0.1', headers: { 'x-forwarded-proto': 'https', host: 'localhost' } })
    t.equal(trusted.status, 200)
  })

  t.test('docs/proxy-trust.md shows the nginx lines these tests run', async (t) => {
    const page = readFileSync(new URL('../docs/proxy-trust.md', import.meta.url), 'utf8')
    for (const line of NGINX_PROXY_HEADERS) t.ok(page.includes(line), line)
  })
})
