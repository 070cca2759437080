/**
 * TLS session resumption: tickets are on; with shared TLS_TICKET_KEYS two instances resume each
 * other's sessions (what a load balancer needs), without them they do not; a certificate reload does
 * not throw resumption away.
 */
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { createPki, type TestPki } from './helpers/certs.ts'
import { startApp, tempDir, type StartedApp } from './helpers/app.ts'

interface Handshake { reused: boolean, session: Buffer, protocol: string | null }

/** One TLS handshake; a full one resolves once the server's session ticket arrived. */
function handshake (port: number, ca: string, session?: Buffer, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, session, maxVersion })
    let ticket: Buffer | undefined
    let connected = false
    const finish = (): void => {
      // A resumed session is not necessarily sent a new ticket.
      if (!connected || (ticket === undefined && !socket.isSessionReused())) return
      ticket ??= session as Buffer
      resolve({ reused: socket.isSessionReused(), session: ticket, protocol: socket.getProtocol() })
      socket.end()
    }
    socket.on('session', (s: Buffer) => { ticket ??= s; finish() })
    socket.on('secureConnect', () => { connected = true; finish() })
    socket.on('data', () => {})
    socket.on('error', reject)
    socket.setTimeout(5000, () => socket.destroy(new Error('no session ticket within 5 s')))
  })
}

let pki: TestPki
let dir: string
let files: { certFile: string, keyFile: string }
t.before(async () => {
  pki = await createPki()
  dir = tempDir()
  const leaf = await pki.leaf()
  files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') }
  writeFileSync(files.certFile, leaf.fullchain)
  writeFileSync(files.keyFile, leaf.key)
})
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

async function instance (t: Test, ticketKeys?: string[]): Promise<StartedApp> {
  const s = await startApp({ tls: { mode: 'files', ...files, ...(ticketKeys === undefined ? {} : { ticketKeys }) }, httpsRedirect: false })
  t.teardown(() => s.close())
  return s
}

t.test('two instances with the same TLS_TICKET_KEYS resume each other\'s sessions', async (t) => {
  const key = randomBytes(48).toString('base64')
  const a = await instance(t, [key])
  const b = await instance(t, [key])
  t.equal(a.app.tls.status().sessionTickets, 'shared')
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const first = await handshake(a.port, pki.root.cert, undefined, version)
    t.equal(first.protocol, version)
    t.equal(first.reused, false, `${version}: the first handshake is a full one`)
    const again = await handshake(b.port, pki.root.cert, first.session, version)
    t.equal(again.reused, true, `${version}: a session from instance A resumes on instance B`)
    const fromB = await handshake(b.port, pki.root.cert, undefined, version)
    t.equal((await handshake(a.port, pki.root.cert, fromB.session, version)).reused, true, `${version}: and B's tickets resume on A`)
  }

  // A reload on B keeps the shared keys: A's tickets still resume there.
  const next = await pki.leaf()
  writeFileSync(files.certFile, next.fullchain)
  writeFileSync(files.keyFile, next.key)
  await b.app.tls.reload()
  await a.app.tls.reload()
  const fromA = await handshake(a.port, pki.root.cert)
  t.equal((await handshake(b.port, pki.root.cert, fromA.session)).reused, true, 'after a certificate reload, sessions still resume across instances')
})

t.test('without shared keys each instance has its own: no resumption across instances', async (t) => {
  const a = await instance(t)
  const b = await instance(t)
  t.equal(a.app.tls.status().sessionTickets, 'per-process')
  const first = await handshake(a.port, pki.root.cert)
  t.equal((await handshake(a.port, pki.root.cert, first.session)).reused, true, 'the same instance resumes (tickets are on)')
  t.equal((await handshake(b.port, pki.root.cert, first.session)).reused, false, 'another instance cannot')

  // Different keys on each side do not resume either.
  const c = await instance(t, [randomBytes(48).toString('base64')])
  t.equal((await handshake(c.port, pki.root.cert, first.session)).reused, false, 'nor one with other keys')

  // A reload keeps the instance's own keys, so its sessions survive it.
  const next = await pki.leaf()
  writeFileSync(files.certFile, next.fullchain)
  writeFileSync(files.keyFile, next.key)
  const status = await a.app.tls.reload()
  t.equal(status.fingerprint, next.fingerprint, 'reloaded')
  t.equal((await handshake(a.port, pki.root.cert, first.session)).reused, true, 'a session from before the reload resumes after it')
})

t.test('TLS_TICKET_KEYS must be 48 bytes of base64', async (t) => {
  const { loadConfig } = await import('../index.ts')
  t.throws(() => loadConfig({ TLS_TICKET_KEYS: randomBytes(32).toString('base64') }), /TLS_TICKET_KEYS: .*48 bytes/)
  const config = loadConfig({ TLS_TICKET_KEYS: `${randomBytes(48).toString('base64')},${randomBytes(48).toString('base64')}` })
  t.equal(config.tls === false ? 0 : config.tls.ticketKeys.length, 2, 'a list, newest first')
})
