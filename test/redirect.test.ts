import fc from 'fast-check'
import { connect } from 'node:net'
import t from 'tap'
import { compileRedirect } from '../plugins/https-redirect.ts'
import { request } from './helpers/http.ts'
import { startApp } from './helpers/app.ts'

t.test('the redirect listener sends HTTP to HTTPS on the same host, keeping path and query', async (t) => {
  const s = await startApp({}, (app) => { app.get('/any/path', async () => ({ ok: true })) })
  t.teardown(() => s.close())
  t.ok(s.redirectUrl, 'the redirect listener is up')
  const redirectUrl = s.redirectUrl as string

  // Development: temporary redirects that the browser does not keep (redirect-dev.test.ts has more).
  const get = await request(`${redirectUrl}/any/path?q=1`)
  t.equal(get.status, 307, 'GET gets 307 in development')
  t.equal(get.headers['cache-control'], 'no-store')
  t.equal(get.headers.location, `https://localhost:${s.port}/any/path?q=1`)

  const head = await request(`${redirectUrl}/x`, { method: 'HEAD' })
  t.equal(head.status, 307, 'HEAD gets 307')

  const post = await request(`${redirectUrl}/login`, { method: 'POST', body: 'user=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(post.status, 307, 'POST gets 307, which keeps the method and body')
  t.equal(post.headers.location, `https://localhost:${s.port}/login`)

  const ip = await request(`${redirectUrl.replace('localhost', '127.0.0.1')}/a`)
  t.equal(ip.status, 307)
  t.equal(ip.headers.location, `https://127.0.0.1:${s.port}/a`, 'an allowed IP host keeps its name')

  const evil = await request(`${redirectUrl}/a`, { headers: { host: 'evil.example' } })
  t.equal(evil.status, 400, 'a Host outside ALLOWED_HOSTS gets 400, not an open redirect')
  t.notOk(evil.headers.location)
  const event = s.logs.events('redirect.unknown-host')[0]
  t.equal(event?.host, 'evil.example', 'and a redirect.unknown-host event')

  const followed = await request(get.headers.location as string, { ca: s.cert as string })
  t.equal(followed.status, 200, 'the redirect target answers over TLS')
  t.equal(followed.tls?.protocol, 'TLSv1.3')
})

t.test('a Host that only ends like an allowed wildcard is refused, never redirected to (listener, and hook mode without host authorization)', async (t) => {
  // Each ends with ".example.com", and a browser following https://<it>/login would go to evil.test.
  const forged = ['evil.test/.example.com', 'evil.test?.example.com', 'evil.test#.example.com', 'evil.test\\.example.com', 'evil.test@a.example.com', 'a.example.com:443@evil.test']
  const allowedHosts = ['localhost', '*.example.com']
  const listener = await startApp({ allowedHosts }, (app) => { app.get('/login', async () => 'login') })
  t.teardown(() => listener.close())
  const hook = await startApp({ allowedHosts, tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] }, hostAuthorization: false }, (app) => { app.get('/login', async () => 'login') })
  t.teardown(() => hook.close())
  for (const [label, base, s] of [['listener', listener.redirectUrl as string, listener], ['hook', hook.url, hook]] as const) {
    for (const host of forged) {
      const response = await request(`${base}/login`, { headers: { host } })
      t.equal(response.status, 400, `${label}: ${host} gets 400`)
      t.equal(response.headers.location, undefined, `${label}: ${host} gets no Location`)
    }
    t.equal(s.logs.events('redirect.unknown-host').length, forged.length, `${label}: one redirect.unknown-host event each`)
    const genuine = await request(`${base}/login`, { headers: { host: 'app.example.com' } })
    t.match(genuine.headers.location, /^https:\/\/app\.example\.com(:\d+)?\/login$/, `${label}: a subdomain of the wildcard is redirected to itself`)
  }
})

t.test('compileRedirect, fuzzed: a Location only ever names an allowed host, with the path it was given', async (t) => {
  const decide = compileRedirect({ allowedHosts: ['example.com', '*.example.com', '127.0.0.1', '::1'], exempt: [], httpsPort: 443, production: true })
  const piece = fc.string({ unit: fc.constantFrom('a', 'b', '.', '-', '/', '?', '#', '\\', '@', ':', '[', ']', '%', '2', 'f', ' ', '1', 'e', 'x'), maxLength: 12 })
  const host = fc.oneof(
    fc.stringMatching(/^[a-z][a-z0-9-]{0,8}(\.[a-z0-9]{1,5})?\.example\.com\.?(:[0-9]{1,5})?$/),
    piece,
    piece.map((p) => `${p}.example.com`),
    fc.tuple(piece, piece).map(([a, b]) => `${a}.example.com${b}`),
    fc.tuple(piece, piece).map(([a, b]) => `${a}example.com:${b}`)
  )
  let redirects = 0
  fc.assert(fc.property(host, (value) => {
    const decision = decide('GET', '/login', value)
    if (decision.kind !== 'redirect') return true
    redirects++
    const url = new URL(decision.location)
    const name = url.hostname
    return (name === 'example.com' || name.endsWith('.example.com') || name === '127.0.0.1' || name === '[::1]') &&
      url.pathname === '/login' && url.username === '' && url.password === '' && url.search === '' && url.hash === '' &&
      decision.location === `https://${url.host}/login`
  }), { numRuns: 5000 })
  t.ok(redirects > 500, `${redirects} of 5000 hosts were redirected, each to an allowed host`)
  t.equal(decide('GET', '/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0', 'example.com').kind, 'pass', 'an ACME challenge is handed to the app over HTTP')
  t.equal(decide('GET', '/.well-known/acme-challenge/../../admin', 'example.com').kind, 'redirect', 'a path that only starts like one is redirected')
})

t.test('an absolute-form request target keeps its path and query, over a real socket', async (t) => {
  const s = await startApp()
  t.teardown(() => s.close())
  const port = Number(new URL(s.redirectUrl as string).port)
  const head = await new Promise<string>((resolve, reject) => {
    let text = ''
    const socket = connect(port, '127.0.0.1', () => socket.write('GET http://other.example/any/path?q=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'))
    socket.on('data', (data: Buffer) => { text += data.toString('latin1') })
    socket.once('error', reject)
    socket.once('close', () => resolve(text))
  })
  t.match(head, /^HTTP\/1\.1 307 /)
  t.match(head, new RegExp(`\\r\\nlocation: https://localhost:${s.port}/any/path\\?q=1\\r\\n`, 'i'), 'the host is still the Host header\'s, the path the target\'s')
})

t.test('compileRedirect, fuzzed over request targets: the Location is https://<the allowed host>/ and then the path', async (t) => {
  const decide = compileRedirect({ allowedHosts: ['example.com', '*.example.com'], exempt: [], httpsPort: 8443, production: true })
  const unit = fc.constantFrom('a', 'b', '.', '-', '/', '/', '?', '#', '\\', '@', ':', '[', ']', '%', '2', 'f', 'e', 'x', 'v', 'i', 'l', '*', ';', '=', '&', '~', '\u00e9')
  const piece = fc.string({ unit, maxLength: 16 })
  const path = piece.map((p) => `/${p}`)
  const target = fc.oneof(
    piece,
    path,
    fc.tuple(fc.constantFrom('http://', 'https://', 'HTTP://', 'http:/', 'http:\\\\', '//', '///', 'ftp://', 'mailto:', 'javascript:', ''), piece, piece).map(([a, b, c]) => `${a}${b}${c}`),
    fc.tuple(fc.constantFrom('http://', 'https://', 'HTTP://'), fc.constantFrom('evil.test', 'evil.test:80', 'a@evil.test', '[::1]', ''), path).map(([a, b, c]) => `${a}${b}${c}`)
  )
  const host = fc.constantFrom('example.com', 'app.example.com', 'EXAMPLE.com:8080')
  fc.assert(fc.property(target, host, (url, hostHeader) => {
    const decision = decide('GET', url, hostHeader)
    if (decision.kind !== 'redirect') return false
    const name = hostHeader.toLowerCase().replace(/:\d+$/, '')
    const prefix = `https://${name}:8443/`
    if (!decision.location.startsWith(prefix)) return false
    const parsed = new URL(decision.location)
    return parsed.host === `${name}:8443` && parsed.username === '' && parsed.password === ''
  }), { numRuns: 20_000 })

  // The path is the target's, whatever host the absolute form names.
  fc.assert(fc.property(fc.constantFrom('http://', 'https://', 'HTTP://'), fc.constantFrom('evil.test', 'other.example:81', 'example.com'),
    fc.stringMatching(/^(\/[a-z0-9._~-]{0,8}){1,4}(\?[a-z0-9=&]{0,10})?$/), (scheme, authority, rest) => {
      const decision = decide('POST', `${scheme}${authority}${rest}`, 'example.com')
      return decision.kind === 'redirect' && decision.location === `https://example.com:8443${rest}`
    }), { numRuns: 2000 })
  t.pass('20000 targets, each redirected to an allowed host, and 2000 absolute forms that kept their path')
})
