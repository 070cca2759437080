/**
 * The app's listener no longer keeps Node's generous defaults: a TLS handshake that never finishes
 * is cut after `listener.handshakeTimeout` (Node: 120 s), requests have header and whole-request
 * deadlines, idle connections are closed (also one whose client stops reading a response) by a
 * sweep that costs nothing per request, and the number of connections is capped.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { connect as http2Connect } from 'node:http2'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import t from 'tap'
import secureHttps, { resolveConfig, serverOptions, type SecureHttpsOptions } from '../index.ts'
import { sweepIdleConnections, sweepPeriod } from '../plugins/idle-sweep.ts'
import { startApp, tempDir, type StartedApp } from './helpers/app.ts'

function closedWithin (socket: { once (event: 'close', fn: () => void): unknown }): Promise<number> {
  const start = Date.now()
  return new Promise((resolve) => socket.once('close', () => resolve(Date.now() - start)))
}

t.test('defaults reach Fastify and Node', async (t) => {
  const options = await serverOptions(resolveConfig({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] } }))
  t.equal(options.requestTimeout, 60_000)
  t.notOk('connectionTimeout' in options, 'no connectionTimeout for Fastify: Node\'s socket timer would cost every request')
  const s = await startApp({}, (app) => { app.get('/', async () => 'ok') })
  t.teardown(() => s.close())
  const server = s.app.server as unknown as { headersTimeout: number, requestTimeout: number, timeout: number, maxConnections: number }
  t.equal(server.headersTimeout, 20_000, 'headers within 20 s')
  t.equal(server.requestTimeout, 60_000, 'the whole request within 60 s')
  t.equal(server.timeout, 0, 'Node\'s socket timer is not armed: the sweep closes idle connections')
  t.equal(server.maxConnections, 10_000, 'at most 10000 connections')
  t.throws(() => resolveConfig({ listener: { headersTimeout: 70_000 } }), /headersTimeout/)
})

t.test('over a real socket: a handshake that never comes is cut', async (t) => {
  const s = await startApp({ listener: { handshakeTimeout: 300 } }, (app) => { app.get('/', async () => 'ok') })
  t.teardown(() => s.close())
  const socket = netConnect({ host: '127.0.0.1', port: s.port })
  socket.on('error', () => {})
  const elapsed = await closedWithin(socket)
  t.ok(elapsed < 5_000, `closed after ${elapsed} ms (Node's default waits 120 s)`)
})

t.test('over a real socket: connections beyond the cap are refused', async (t) => {
  const s = await startApp({ listener: { maxConnections: 2 } }, (app) => { app.get('/', async () => 'ok') })
  t.teardown(() => s.close())
  const open = async (): Promise<TLSSocket> => new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: s.port, ca: s.cert as string, servername: 'localhost' }, () => resolve(socket))
    socket.once('error', reject)
  })
  const first = await open()
  const second = await open()
  t.teardown(() => { first.destroy(); second.destroy() })
  const third = netConnect({ host: '127.0.0.1', port: s.port })
  third.on('error', () => {})
  const elapsed = await closedWithin(third)
  t.ok(elapsed < 5_000, `the third connection is closed at once (${elapsed} ms)`)
})

const big = Buffer.alloc(64 * 1024 * 1024, 'a')

/** The server side of the next connection: when it opened, and a promise of how long until it closed. */
function nextConnection (app: FastifyInstance): Promise<{ socket: Socket, closed: Promise<number> }> {
  return new Promise((resolve) => {
    app.server.once('connection', (socket: Socket) => { resolve({ socket, closed: closedWithin(socket) }) })
  })
}

type Client = 'HTTP/1.1 over TLS' | 'HTTP/2' | 'plain HTTP behind a proxy'

/**
 * A client that requests /big, a response far larger than the socket buffers of both ends, and never
 * reads it: the request was received whole (headersTimeout and requestTimeout are done with it) and
 * the response never ends (keepAliveTimeout is not armed), so only connectionTimeout can close it.
 */
async function stalledClient (s: StartedApp, client: Client): Promise<{ destroy: () => void }> {
  if (client === 'HTTP/2') {
    const session = http2Connect(`https://localhost:${s.port}`, { ca: s.cert as string })
    session.on('error', () => {})
    const stream = session.request({ ':path': '/big' })
    stream.on('error', () => {})
    stream.pause()
    return { destroy: () => { session.destroy() } }
  }
  const socket = client === 'plain HTTP behind a proxy'
    ? netConnect({ host: '127.0.0.1', port: s.port }, () => { socket.write('GET /big HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: https\r\n\r\n') })
    : tlsConnect({ host: '127.0.0.1', port: s.port, ca: s.cert as string, servername: 'localhost' }, () => { socket.write('GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n') })
  socket.on('error', () => {})
  socket.pause()
  return { destroy: () => { socket.destroy() } }
}

function appFor (client: Client, listener: SecureHttpsOptions['listener']): SecureHttpsOptions {
  if (client === 'plain HTTP behind a proxy') return { listener, tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] }, httpsRedirect: false }
  return { listener, tls: { http2: client === 'HTTP/2' } }
}

const bigRoute = (app: FastifyInstance): void => { app.get('/big', async (_request, reply) => reply.type('application/octet-stream').send(big)) }

for (const client of ['HTTP/1.1 over TLS', 'HTTP/2', 'plain HTTP behind a proxy'] as const) {
  t.test(`over a real socket, ${client}: a client that stops reading a response is cut by connectionTimeout alone`, async (t) => {
    const s = await startApp(appFor(client, { connectionTimeout: 500 }), bigRoute)
    t.teardown(() => s.close())
    const connection = nextConnection(s.app)
    const stalled = await stalledClient(s, client)
    t.teardown(stalled.destroy)
    const elapsed = await (await connection).closed
    // The sweep looks every sweepPeriod(500) = 125 ms: closed after 500 to 625 ms of silence, later
    // on a loaded machine; never before the timeout.
    t.ok(elapsed >= 495 && elapsed < 30_000, `closed by the server ${elapsed} ms after the connection, its response unread: not before the 500 ms timeout`)

    const kept = await startApp({ ...appFor(client, false) }, bigRoute)
    t.teardown(() => kept.close())
    const keptConnection = nextConnection(kept.app)
    const keptClient = await stalledClient(kept, client)
    t.teardown(keptClient.destroy)
    const outcome = await Promise.race([(await keptConnection).closed.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 2_000, 'open'))])
    t.equal(outcome, 'open', 'with Node\'s and Fastify\'s defaults (listener: false) the same connection is still open after 2 s, four times that timeout')
  })
}

t.test('over a real socket: a connection whose bytes keep moving outlives connectionTimeout; once silent it is closed', async (t) => {
  const s = await startApp({ listener: { connectionTimeout: 400 } }, (app) => { app.get('/', async () => 'ok') })
  t.teardown(() => s.close())
  const connection = nextConnection(s.app)
  const socket = tlsConnect({ host: '127.0.0.1', port: s.port, ca: s.cert as string, servername: 'localhost' })
  socket.on('error', () => {})
  t.teardown(() => socket.destroy())
  let answers = 0
  socket.on('data', (chunk: Buffer) => { answers += chunk.toString('latin1').split('HTTP/1.1 200').length - 1 })
  const { socket: served, closed } = await connection
  // A request every 100 ms on the same keep-alive connection for 1.6 s: four times the timeout.
  const start = Date.now()
  let sent = 0
  while (Date.now() - start < 1_600 && !served.destroyed) {
    socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
    sent++
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(!served.destroyed, `still open after ${Date.now() - start} ms of a request every 100 ms (timeout 400 ms)`)
  t.ok(answers >= sent - 1 && answers > 10, `${answers} of ${sent} requests answered on the one connection`)
  // Silent from now on: Fastify's keep-alive timeout is 72 s, so only the sweep closes it.
  const silent = Date.now()
  await closed
  const after = Date.now() - silent
  t.ok(after >= 300 && after < 30_000, `closed ${after} ms after its last request (timeout 400 ms, the last answer a little after the request)`)
})

t.test('an app that gives Fastify a connectionTimeout of its own keeps Node\'s timer, and no sweep runs', async (t) => {
  const config = resolveConfig({ port: 0, tls: { dir: tempDir(undefined, t) }, httpsRedirect: false, listener: { connectionTimeout: 300 } })
  const app = Fastify({ logger: false, ...(await serverOptions(config)), connectionTimeout: 5_000 }) as unknown as FastifyInstance
  await app.register(secureHttps, config)
  bigRoute(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  t.equal((app.server as unknown as { timeout: number }).timeout, 5_000, 'Node\'s socket timer is the app\'s')
  const port = (app.server.address() as { port: number }).port
  const connection = nextConnection(app)
  const socket = netConnect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  t.teardown(() => socket.destroy())
  const { closed } = await connection
  const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 1_500, 'open'))])
  t.equal(outcome, 'open', 'a silent connection is still open after 1.5 s, five times the listener\'s 300 ms: the app\'s 5 s applies')
})

t.test('sweepIdleConnections: the period, and stop()', async (t) => {
  t.equal(sweepPeriod(500), 125, 'a quarter of the timeout')
  t.equal(sweepPeriod(90_000), 5_000, 'at most 5 s: a connection is closed within 5 s of the timeout')
  t.equal(sweepPeriod(1), 10, 'at least 10 ms')
  const { createServer } = await import('node:net')
  const server = createServer((socket) => { socket.on('error', () => {}) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const sweep = sweepIdleConnections(server, 200)
  const port = (server.address() as { port: number }).port
  const first = netConnect({ host: '127.0.0.1', port })
  first.on('error', () => {})
  t.teardown(() => first.destroy())
  const firstClosed = closedWithin(first)
  await new Promise((resolve) => first.once('connect', resolve))
  while (sweep.size === 0) await new Promise((resolve) => setImmediate(resolve))
  t.equal(sweep.size, 1, 'the connection is watched')
  t.ok(await firstClosed >= 150, 'a silent connection is closed after the timeout')
  t.equal(sweep.size, 0, 'and forgotten')
  sweep.stop()
  const second = netConnect({ host: '127.0.0.1', port })
  second.on('error', () => {})
  t.teardown(() => second.destroy())
  await new Promise((resolve) => second.once('connect', resolve))
  const outcome = await Promise.race([closedWithin(second).then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 800, 'open'))])
  t.equal(outcome, 'open', 'after stop() a silent connection stays open past four times the timeout')
  t.equal(sweep.size, 0, 'nothing watched after stop()')
})
