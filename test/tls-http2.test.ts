/**
 * HTTP2=true: one TLS listener speaking HTTP/2 (ALPN h2) and HTTP/1.1 (ALPN http/1.1, or no ALPN),
 * tested with node:http2 and an HTTP/1.1 client against the same server: redirect, HSTS, the session
 * cookie and certificate reload behave the same over both.
 */
import t from 'tap'
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent } from 'node:https'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { createPki, served, waitForServed } from './helpers/certs.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { cookieHeader, request } from './helpers/http.ts'

interface H2Response { status: number, headers: IncomingHttpHeaders, body: string }

function h2 (session: ClientHttp2Session, path: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': options.method ?? 'GET', ':path': path, ...options.headers })
    let headers: IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    stream.on('response', (h) => { headers = h })
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks).toString('utf8') }))
    stream.on('error', reject)
    stream.end(options.body)
  })
}

function open (url: string, ca: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(url, { ca })
    session.once('connect', () => resolve(session))
    session.once('error', reject)
  })
}

t.test('HTTP/2 and HTTP/1.1 on one listener: ALPN, HSTS, session, redirect, reload', async (t) => {
  const pki = await createPki()
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await pki.leaf()
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  writeFileSync(certFile, first.fullchain)
  writeFileSync(keyFile, first.key)
  const s = await startApp({
    tls: { mode: 'files', certFile, keyFile, http2: true },
    hsts: { maxAge: 300, localhost: true }
  }, (app) => {
    app.get('/', async (req) => ({ version: req.raw.httpVersion, user: req.session.get('user') ?? null }))
    app.post<{ Body: { user: string } }>('/login', async (req) => {
      req.session.set('user', req.body.user)
      return { ok: true }
    })
  })
  t.teardown(() => s.close())
  const ca = pki.root.cert

  const session = await open(s.url, ca)
  t.teardown(() => session.close())
  t.equal(session.alpnProtocol, 'h2', 'ALPN negotiates h2')
  t.equal((session.socket as TLSSocket).getProtocol(), 'TLSv1.3')

  const home = await h2(session, '/')
  t.equal(home.status, 200)
  t.same(JSON.parse(home.body), { version: '2.0', user: null }, 'the app sees an HTTP/2 request')
  t.equal(home.headers['strict-transport-security'], 'max-age=300', 'HSTS over HTTP/2')

  const login = await h2(session, '/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'alice' }) })
  t.equal(login.status, 200)
  const setCookie = ([] as string[]).concat(login.headers['set-cookie'] ?? [])
  t.match(setCookie[0], /^__Host-session=.*; Secure/i, 'the session cookie is set Secure over HTTP/2')
  const cookie = (setCookie[0] ?? '').split(';')[0] as string
  t.same(JSON.parse((await h2(session, '/', { headers: { cookie } })).body).user, 'alice', 'and read back over HTTP/2')

  const h1 = await request(`${s.url}/`, { ca, headers: { cookie }, agent: new Agent() })
  t.equal(h1.tls?.alpn, false, 'a client without ALPN (Node\'s https) is served HTTP/1.1 on the same port')
  const alpn = await new Promise<string | false | null>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: s.port, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] }, () => {
      resolve(socket.alpnProtocol)
      socket.end()
    })
    socket.on('error', reject)
  })
  t.equal(alpn, 'http/1.1', 'a client offering only http/1.1 in ALPN gets it')
  t.same(JSON.parse(h1.body), { version: '1.1', user: 'alice' }, 'the HTTP/2 session cookie works over HTTP/1.1')
  t.equal(h1.headers['strict-transport-security'], 'max-age=300', 'HSTS over HTTP/1.1')

  const h1Login = await request(`${s.url}/login`, { ca, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'bob' }) })
  const bob = await h2(session, '/', { headers: { cookie: cookieHeader(h1Login) } })
  t.equal(JSON.parse(bob.body).user, 'bob', 'an HTTP/1.1 session cookie works over HTTP/2')

  const redirect = await request(`${s.redirectUrl as string}/some/path?x=1`)
  t.equal(redirect.status, 307)
  t.equal(redirect.headers.location, `https://localhost:${s.port}/some/path?x=1`, 'the HTTP listener redirects to the HTTP/2 server')

  // Reload: the open HTTP/2 session keeps its connection and certificate; new ones get the new one.
  const before = (session.socket as TLSSocket).getPeerCertificate().fingerprint256
  t.equal(before, first.fingerprint)
  const second = await pki.leaf()
  writeFileSync(certFile, second.fullchain)
  writeFileSync(keyFile, second.key)
  const took = await waitForServed(s.port, second.fingerprint, { ca })
  t.ok(took < 2000, `reloaded under HTTP/2 in ${took} ms`)
  const still = await h2(session, '/', { headers: { cookie } })
  t.equal(still.status, 200, 'the HTTP/2 session opened before the reload keeps working')
  t.equal((session.socket as TLSSocket).getPeerCertificate().fingerprint256, first.fingerprint, 'on its original certificate')
  const fresh = await open(s.url, ca)
  t.teardown(() => fresh.close())
  t.equal((fresh.socket as TLSSocket).getPeerCertificate().fingerprint256, second.fingerprint, 'a new HTTP/2 session gets the new certificate')
  t.equal((await h2(fresh, '/')).status, 200)
  const h1After = await request(`${s.url}/`, { ca, agent: new Agent() })
  t.equal(h1After.tls?.certificate.fingerprint256, second.fingerprint, 'and so does a new HTTP/1.1 connection')
  t.equal((await served(s.port, { ca })).protocol, 'TLSv1.3')
  t.equal(s.app.tls.status().http2, true, 'status() reports HTTP/2')
})

t.test('serverOptions builds an HTTP/2 secure server only when asked', async (t) => {
  const { serverOptions } = await import('../index.ts')
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const h2Options = await serverOptions({ tls: { dir, http2: true } }) as unknown as { http2?: boolean, https: { allowHTTP1?: boolean, minVersion?: string } }
  t.equal(h2Options.http2, true)
  t.equal(h2Options.https.allowHTTP1, true, 'with HTTP/1.1 fallback')
  t.equal(h2Options.https.minVersion, 'TLSv1.2', 'and the profile')
  const h1Options = await serverOptions({ tls: { dir } }) as unknown as { http2?: boolean }
  t.equal(h1Options.http2, undefined, 'HTTPS/1.1 by default')
})
