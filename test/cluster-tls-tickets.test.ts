/**
 * TLS at each instance (no terminating proxy, or a TCP pass-through balancer): a client resumes
 * its TLS session on another instance only when the fleet shares TLS_TICKET_KEYS.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, type SecureVersion, type TLSSocket } from 'node:tls'
import { generateSelfSigned } from '../tls/self-signed.ts'
import { startApp, tempDir, type StartedApp } from './helpers/app.ts'

interface Handshake { reused: boolean, session: Buffer | undefined }

/** One TLS handshake; resolves with whether it resumed and the ticket the server sent. */
function handshake (port: number, ca: string, version: SecureVersion, session?: Buffer): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, session, minVersion: version, maxVersion: version })
    socket.on('session', (data: Buffer) => { ticket = data })
    socket.once('secureConnect', () => {
      // TLS 1.3 tickets arrive after the handshake: a request and its answer make sure one came.
      socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
    })
    socket.on('data', () => {})
    socket.once('end', () => resolve({ reused: socket.isSessionReused(), session: ticket }))
    socket.once('error', reject)
  })
}

t.test('TLS sessions resume across instances only with shared ticket keys', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pair = await generateSelfSigned(['localhost', '127.0.0.1'])
  writeFileSync(join(dir, 'cert.pem'), pair.cert)
  writeFileSync(join(dir, 'key.pem'), pair.key, { mode: 0o600 })
  const shared = randomBytes(48).toString('base64')
  const start = async (ticketKeys: string[]): Promise<StartedApp> => {
    const app = await startApp({ tls: { mode: 'files', certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), ticketKeys }, httpsRedirect: false }, (app) => {
      app.get('/healthz', async () => 'ok')
    })
    t.teardown(() => app.close())
    return app
  }
  const [a1, a2, loner] = [await start([shared]), await start([shared]), await start([])]
  t.equal(a1.app.tls.status().sessionTickets, 'shared')
  t.equal(loner.app.tls.status().sessionTickets, 'per-process')

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const first = await handshake(a1.port, pair.cert, version)
    t.equal(first.reused, false, `${version}: first handshake is full`)
    t.ok(first.session, `${version}: a1 sent a session ticket`)
    const again = await handshake(a2.port, pair.cert, version, first.session)
    t.equal(again.reused, true, `${version}: a2 resumes the session a1 made (shared TLS_TICKET_KEYS)`)
    const elsewhere = await handshake(loner.port, pair.cert, version, first.session)
    t.equal(elsewhere.reused, false, `${version}: an instance with its own keys cannot, and falls back to a full handshake`)
  }
})
