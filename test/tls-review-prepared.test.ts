/**
 * serverOptions(config) called twice for one config: each instance's tls plugin takes what was
 * prepared for its own server (recognized by the ticket keys it was built with), so the SNI callback
 * installed in that server gets the table. Taking the oldest entry filled the other server's table
 * and left this one's empty: every name got the default certificate. Over real TLS, with and
 * without shared ticket keys (TLS_TICKET_KEYS).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:tls'
import t, { type Test } from 'tap'
import { resolveConfig, serverOptions, tls } from '../index.ts'
import { createPki, served, type TestPki } from './helpers/certs.ts'
import { tempDir } from './helpers/app.ts'
import { writePair } from './helpers/cert-files.ts'

let pki: TestPki
t.before(async () => { pki = await createPki() })

async function listen (t: Test, app: FastifyInstance): Promise<number> {
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  return typeof address === 'object' && address !== null ? address.port : 0
}

/** The session of a first connection, and whether a second connection resumed it. */
async function resumes (port: number, ca: string): Promise<boolean> {
  const session = await new Promise<Buffer>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'a.test', ca, maxVersion: 'TLSv1.2' }, () => {
      const value = socket.getSession()
      socket.end()
      if (value === undefined) reject(new Error('no session')); else resolve(value)
    })
    socket.on('error', reject)
  })
  return await new Promise<boolean>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'a.test', ca, session, maxVersion: 'TLSv1.2' }, () => {
      resolve(socket.isSessionReused())
      socket.end()
    })
    socket.on('error', reject)
  })
}

for (const shared of [false, true]) {
  t.test(`two serverOptions() calls for one config${shared ? ', with TLS_TICKET_KEYS' : ''}: each server's SNI table is filled, whichever is registered first`, async (t) => {
    const dir = tempDir(undefined, t)
    const leafA = await pki.leaf({ hosts: ['a.test'] })
    const leafB = await pki.leaf({ hosts: ['b.test'] })
    const pairA = writePair(dir, 'a', leafA)
    const pairB = writePair(dir, 'b', leafB)
    const ticketKey = randomBytes(48)
    const config = resolveConfig({
      allowedHosts: ['a.test', 'b.test'],
      tls: { mode: 'files', dir, certFile: `${pairA.certFile},${pairB.certFile}`, keyFile: `${pairA.keyFile},${pairB.keyFile}`, ...(shared ? { ticketKeys: [ticketKey.toString('base64')] } : {}) },
      httpsRedirect: false
    })
    if (config.tls === false) throw new Error('no tls')
    const first = await serverOptions(config)
    const second = await serverOptions(config)
    const ca = pki.root.cert

    // The instance built from the second call is registered first.
    const later = Fastify({ ...second })
    await later.register(tls, config.tls)
    const laterPort = await listen(t, later)
    t.equal((await served(laterPort, { ca, servername: 'b.test' })).fingerprint, leafB.fingerprint, 'b.test gets its certificate from the server built with the second call')
    t.equal((await served(laterPort, { ca, servername: 'a.test' })).fingerprint, leafA.fingerprint, 'a.test its own')

    const earlier = Fastify({ ...first })
    await earlier.register(tls, config.tls)
    const earlierPort = await listen(t, earlier)
    t.equal((await served(earlierPort, { ca, servername: 'b.test' })).fingerprint, leafB.fingerprint, 'and from the one built with the first')

    if (shared) {
      t.ok(later.server.getTicketKeys().equals(ticketKey), 'the shared ticket key is in place once the plugin is registered')
      t.ok(earlier.server.getTicketKeys().equals(ticketKey))
    }
    t.equal(await resumes(laterPort, ca), true, 'sessions resume')
  })
}

t.test('an earlier preparation never built into a server is passed over', async (t) => {
  const dir = tempDir(undefined, t)
  const leafA = await pki.leaf({ hosts: ['a.test'] })
  const leafB = await pki.leaf({ hosts: ['b.test'] })
  const pairA = writePair(dir, 'a', leafA)
  const pairB = writePair(dir, 'b', leafB)
  const config = resolveConfig({ allowedHosts: ['a.test', 'b.test'], tls: { mode: 'files', dir, certFile: `${pairA.certFile},${pairB.certFile}`, keyFile: `${pairA.keyFile},${pairB.keyFile}` }, httpsRedirect: false })
  if (config.tls === false) throw new Error('no tls')
  await serverOptions(config) // prepared, never used
  const mine = await serverOptions(config)
  const app = Fastify({ ...mine })
  await app.register(tls, config.tls)
  const port = await listen(t, app)
  t.equal((await served(port, { ca: pki.root.cert, servername: 'b.test' })).fingerprint, leafB.fingerprint)
})
