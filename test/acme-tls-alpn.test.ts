/**
 * ACME_CHALLENGE=tls-alpn-01 against a real pebble (RFC 8737): the CA connects to the HTTPS port
 * with ALPN `acme-tls/1` and is answered inside the TLS handshake, with no HTTP listener at all;
 * ordinary clients keep negotiating http/1.1 (or h2), and a handshake asking for `acme-tls/1` with no
 * challenge pending gets no certificate.
 */
import { X509Certificate } from 'node:crypto'
import { connect } from 'node:tls'
import t from 'tap'
import { tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { startInstance } from './helpers/fleet.ts'
import { request } from './helpers/http.ts'
import { acmeOptions, presented, reloaded, startPebble } from './helpers/pebble.ts'

/** What a handshake offering these ALPN protocols gets: the protocol, or the error. */
function handshake (port: number, servername: string, protocols: string[], maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<{ alpn: string | false | null, subject?: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ALPNProtocols: protocols, rejectUnauthorized: false, maxVersion }, () => {
      resolve({ alpn: socket.alpnProtocol, subject: String(socket.getPeerCertificate().subject?.CN) })
      socket.end()
    })
    socket.on('error', (error) => resolve({ error: error.message }))
  })
}

t.test('TLS-ALPN-01 against pebble', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble()
  t.teardown(() => pebble.close())

  for (const http2 of [false, true]) {
    t.test(`issued through the HTTPS port alone${http2 ? ', on an HTTP/2 server' : ''}`, async (t) => {
      const name = http2 ? 'h2.alpn.test' : 'alpn.test'
      const options = acmeOptions(pebble, tempDir(undefined, t), [name], 0, { challenge: 'tls-alpn-01' })
      const s = await startInstance({ ...options, tls: { ...(options.tls as object), http2 }, httpsRedirect: false }, pebble.tlsPort, (app) => { app.get('/', async () => 'hello') })
      t.teardown(() => s.close())
      t.equal(s.httpPort, null, 'no HTTP listener: port 80 is not needed')

      const update = await s.logs.waitFor(reloaded, 30_000)
      t.equal(update.reason, 'ACME certificate issued')
      const [leaf] = await presented(s.port, name)
      const { intermediate, root } = await pebble.issuers()
      t.ok(leaf?.checkIssued(new X509Certificate(intermediate)), 'pebble validated the name over TLS-ALPN-01 and issued it')
      t.match(leaf?.subjectAltName, new RegExp(`DNS:${name.replace(/\./g, '\\.')}`))
      t.equal(s.logs.lines.filter((line) => String(line.msg).startsWith('ACME: ordering')).length, 1, 'one order')

      const verified = await request(`https://127.0.0.1:${s.port}/`, { ca: root, servername: name, headers: { host: name } })
      t.equal(verified.status, 200, 'an ordinary client gets the site')
      const http1 = await handshake(s.port, name, ['http/1.1'])
      t.same('alpn' in http1 ? http1.alpn : http1, 'http/1.1', 'a client offering http/1.1 gets it')
      const h2 = await handshake(s.port, name, ['h2', 'http/1.1'])
      t.same('alpn' in h2 ? h2.alpn : h2, http2 ? 'h2' : 'http/1.1', `a client offering h2 gets ${http2 ? 'h2' : 'http/1.1'}`)
      const none = await handshake(s.port, name, ['spdy/3'])
      t.ok('error' in none, 'a client offering nothing the server speaks is refused, as Node does without the callback')

      const stray = await handshake(s.port, name, ['acme-tls/1'])
      t.ok('error' in stray, `acme-tls/1 with no challenge pending gets no certificate at all (${'error' in stray ? stray.error : ''})`)
      const tls12 = await handshake(s.port, name, ['acme-tls/1'], 'TLSv1.2')
      t.ok('error' in tls12, 'nor over TLS 1.2, where the certificate is chosen before ALPN')
      const status = s.app.tls.status()
      t.equal(status.selfSigned, false)
      t.same(status.certificates.map((c) => c.name), [name])
    })
  }
})
