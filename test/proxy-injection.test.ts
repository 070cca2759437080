/**
 * Forwarded injection through a proxy that copies Host into Forwarded without escaping (haproxy's
 * `host=\"%[req.hdr(host)]\"`): `Host: x", for=10.0.0.1;proto=https;host="example.com` made plain
 * HTTP count as secure (no redirect, HSTS over HTTP) and faked request.forwarded. Run through real
 * haproxy (the documented configuration, and the old one without its Host check) and real nginx.
 */
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { startHaproxy } from './helpers/haproxy.ts'
import { request } from './helpers/http.ts'
import { startNginx } from './helpers/nginx.ts'

const STS = 'strict-transport-security'
const INJECTED = 'x", for=10.0.0.1;proto=https;host="example.com'

async function app (t: { teardown (fn: () => unknown): void }, hostAuthorization: boolean) {
  const s = await startApp({
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['loopback'], forwarded: true },
    allowedHosts: ['localhost', 'example.com'],
    hsts: { localhost: true },
    ...(hostAuthorization ? {} : { hostAuthorization: false as const })
  }, (app) => {
    app.get('/whoami', async (request) => ({ secure: request.secure, forwarded: request.forwarded }))
  })
  t.teardown(() => s.close())
  return s
}

t.test('haproxy as documented refuses the injected Host itself', async (t) => {
  if (requirePrograms(t, ['haproxy']) === null) return
  const s = await app(t, true)
  const haproxy = await startHaproxy({ upstreamPort: s.port })
  t.teardown(() => haproxy.stop())
  const res = await request(`${haproxy.httpUrl}/whoami`, { headers: { host: INJECTED } })
  t.equal(res.status, 400, 'haproxy answers 400')
  t.notOk(res.headers[STS])
  const normal = await request(`${haproxy.httpUrl}/whoami`)
  t.match(normal.status, /^30[178]$/, 'a normal plain HTTP request is still redirected')
})

t.test('haproxy without the Host check: the app defends itself', async (t) => {
  if (requirePrograms(t, ['haproxy']) === null) return
  const guarded = await app(t, true)
  const haproxy = await startHaproxy({ upstreamPort: guarded.port, withoutHostCheck: true })
  t.teardown(() => haproxy.stop())
  const res = await request(`${haproxy.httpUrl}/whoami`, { headers: { host: INJECTED } })
  t.equal(res.status, 400, 'host authorization refuses the malformed Host')
  t.notOk(res.headers[STS], 'no HSTS over plain HTTP')
  await guarded.logs.waitFor((line) => line.securityEvent === 'host.unknown' && line.malformed === true)

  // With host authorization off, proxyTrust alone: the injected element is not believed.
  const open = await app(t, false)
  const haproxy2 = await startHaproxy({ upstreamPort: open.port, withoutHostCheck: true })
  t.teardown(() => haproxy2.stop())
  const plain = await request(`${haproxy2.httpUrl}/whoami`, { headers: { host: INJECTED } })
  t.ok([301, 307, 308, 400].includes(plain.status), `plain HTTP is not served as secure: proto=https from the client is not believed (status ${plain.status}: the redirect, or its refusal of the malformed host)`)
  t.notOk(plain.headers[STS], 'and gets no HSTS')
  const exempt = await startApp({
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['loopback'], forwarded: true },
    allowedHosts: ['localhost'],
    hostAuthorization: false,
    httpsRedirect: { exempt: ['/whoami'] },
    hsts: { localhost: true }
  }, (app) => { app.get('/whoami', async (request) => ({ secure: request.secure, forwarded: request.forwarded })) })
  t.teardown(() => exempt.close())
  const haproxy3 = await startHaproxy({ upstreamPort: exempt.port, withoutHostCheck: true })
  t.teardown(() => haproxy3.stop())
  const seen = await request(`${haproxy3.httpUrl}/whoami`, { headers: { host: INJECTED } })
  t.same(JSON.parse(seen.body), { secure: false, forwarded: null }, 'request.forwarded is not the client\'s fake element')
  t.notOk(seen.headers[STS])
})

t.test('nginx: the same Host changes nothing', async (t) => {
  if (requirePrograms(t, ['nginx']) === null) return
  const s = await startApp({
    tls: { mode: 'proxy' },
    proxyTrust: { trust: ['loopback'] },
    allowedHosts: ['localhost', 'example.com'],
    hsts: { localhost: true }
  }, (app) => { app.get('/whoami', async (request) => ({ secure: request.secure, host: request.host })) })
  t.teardown(() => s.close())
  const nginx = await startNginx({ upstreamPort: s.port })
  t.teardown(() => nginx.stop())
  const res = await request(`${nginx.httpUrl}/whoami`, { headers: { host: INJECTED } })
  t.ok(res.status === 400, `refused (status ${res.status}), by nginx or by host authorization`)
  t.notOk(res.headers[STS], 'no HSTS over plain HTTP')
  const comma = await request(`${nginx.httpUrl}/whoami`, { headers: { host: 'evil.test, example.com' } })
  t.equal(comma.status, 400, 'a comma in Host cannot pick the X-Forwarded-Host entry Fastify reads')
  const normal = await request(`${nginx.httpUrl}/whoami`)
  t.match(normal.status, /^30[178]$/, 'a normal plain HTTP request is redirected')
})
