/**
 * TLS_MODE=acme against a real pebble with real HTTP-01 validation: the temporary certificate at
 * once, pebble's certificate within seconds, reuse after a restart, the problem document of a
 * refused order, and two instances sharing TLS_DIR.
 */
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { startApp, tempDir, type StartedApp } from './helpers/app.js'
import { requirePrograms } from './helpers/external.js'
import { request } from './helpers/http.js'
import type { LogLine } from './helpers/logs.js'
import { startPebble, type Pebble } from './helpers/pebble.js'
import { directoryFolder } from '../tls/acme-store.js'
import type { SecureHttpsOptions } from '../index.js'

/** The certificate chain a server presents for a name, without judging it. */
export function presented (port: number, servername: string): Promise<X509Certificate[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const chain: X509Certificate[] = []
      let peer = socket.getPeerCertificate(true)
      const seen = new Set<string>()
      while (peer?.raw !== undefined && !seen.has(peer.fingerprint256)) {
        seen.add(peer.fingerprint256)
        chain.push(new X509Certificate(peer.raw))
        peer = peer.issuerCertificate
      }
      socket.end()
      resolve(chain)
    })
    socket.once('error', reject)
  })
}

/** Options for an app in TLS_MODE=acme against this pebble. */
export function acmeOptions (pebble: Pebble, dir: string, domains: string[], httpPort: number, extra: Record<string, unknown> = {}): SecureHttpsOptions {
  return {
    allowedHosts: [...domains, 'localhost', '127.0.0.1'],
    tls: {
      mode: 'acme',
      dir,
      acme: { domains, email: 'ops@example.com', directory: pebble.directory, caFile: pebble.caFile, agreeTos: true, retryDelay: 0.2, ...extra }
    },
    httpsRedirect: { port: httpPort }
  }
}

export const reloaded = (line: LogLine): boolean => line.msg === 'TLS certificate reloaded'

t.test('TLS_MODE=acme against pebble', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble({ blocklist: ['blocked.test'] })
  t.teardown(() => pebble.close())
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const routes = (app: StartedApp['app']): void => { app.get('/', async () => 'hello') }

  let issued = ''
  t.test('serves a temporary certificate at once, then pebble\'s, validated over real HTTP-01', async (t) => {
    const started = Date.now()
    const s = await startApp(acmeOptions(pebble, dir, ['app.test', 'www.app.test'], pebble.httpPort), routes)
    t.teardown(() => s.close())
    const [temporary] = await presented(s.port, 'app.test')
    const startedIn = Date.now() - started
    t.ok(temporary, 'the app answers TLS right after listen')
    t.equal(temporary?.issuer, temporary?.subject, 'with a self-signed temporary certificate')
    t.match(temporary?.subjectAltName, /DNS:app\.test/, 'covering the ACME domains')
    t.equal(s.app.tls.status().selfSigned, true)
    t.ok(startedIn < 5000, `started in ${startedIn} ms, without waiting for the CA`)

    const update = await s.logs.waitFor(reloaded, 30_000)
    const issuedIn = Date.now() - started
    t.equal(update.reason, 'ACME certificate issued')
    t.comment(`pebble's certificate served ${issuedIn} ms after start`)
    t.ok(issuedIn < 30_000)

    const { root, intermediate } = await pebble.issuers()
    const chain = await presented(s.port, 'www.app.test')
    const leaf = chain[0] as X509Certificate
    const issuer = new X509Certificate(intermediate)
    t.ok(leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey), 'the leaf is signed by pebble\'s intermediate')
    t.ok(issuer.verify(new X509Certificate(root).publicKey), 'which pebble\'s root signed')
    t.match(leaf.subjectAltName, /DNS:app\.test/)
    t.match(leaf.subjectAltName, /DNS:www\.app\.test/)
    t.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'the certificate key is ECDSA P-256')

    const verified = await request(`https://127.0.0.1:${s.port}/`, { ca: root, servername: 'app.test', headers: { host: 'app.test' } })
    t.equal(verified.status, 200, 'a client trusting only pebble\'s root connects, with host name checks')
    t.equal(verified.body, 'hello')
    t.equal(s.app.tls.status().selfSigned, false)
    t.equal(s.app.tls.status().fingerprint, leaf.fingerprint256)

    const ordering = s.logs.lines.filter((line) => String(line.msg).startsWith('ACME: ordering'))
    t.equal(ordering.length, 1, 'one order')

    const folder = join(dir, 'acme', directoryFolder(pebble.directory))
    for (const name of ['account-key.pem', 'key.pem']) {
      t.equal(statSync(join(folder, name)).mode & 0o777, 0o600, `${name} is readable by its owner only`)
    }
    const stored = new X509Certificate(readFileSync(join(folder, 'cert.pem')))
    t.equal(stored.fingerprint256, leaf.fingerprint256, 'the certificate is stored under TLS_DIR/acme/')
    issued = leaf.fingerprint256

    const unknown = await request(`http://127.0.0.1:${pebble.httpPort}/.well-known/acme-challenge/nope`, { headers: { host: 'app.test' } })
    t.equal(unknown.status, 404, 'an unknown challenge token gets 404 from the redirect listener')
    const other = await request(`http://127.0.0.1:${pebble.httpPort}/other`, { headers: { host: 'app.test' } })
    t.equal(other.status, 301, 'every other path still redirects')
  })

  t.test('a restart serves the stored certificate at once and orders nothing', async (t) => {
    const s = await startApp(acmeOptions(pebble, dir, ['app.test', 'www.app.test'], pebble.httpPort), routes)
    t.teardown(() => s.close())
    const [leaf] = await presented(s.port, 'app.test')
    t.equal(leaf?.fingerprint256, issued, 'the stored certificate from the first run')
    const checked = await s.logs.waitFor((line) => String(line.msg).startsWith('ACME: certificate not due'), 10_000)
    t.ok(checked.renewAt, `checked at start: renewal due ${String(checked.renewAt)}`)
    t.same(s.logs.lines.filter((line) => String(line.msg).startsWith('ACME: ordering')), [], 'no new order')
  })
})
