/**
 * The app's listener no longer keeps Node's generous defaults: a TLS handshake that never finishes
 * is cut after `listener.handshakeTimeout` (Node: 120 s), requests have header and whole-request
 * deadlines, idle connections are closed (also one whose client stops reading a response), and the
 * number of connections is capped.
 */
import { connect as netConnect } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import t from 'tap'
import { resolveConfig, serverOptions } from '../index.ts'
import { startApp } from './helpers/app.ts'

function closedWithin (socket: { once (event: 'close', fn: () => void): unknown }): Promise<number> {
  const start = Date.now()
  return new Promise((resolve) => socket.once('close', () => resolve(Date.now() - start)))
}

t.test('defaults reach Fastify and Node', async (t) => {
  const options = await serverOptions(resolveConfig({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] } }))
  t.equal(options.requestTimeout, 60_000)
  t.equal(options.connectionTimeout, 90_000)
  const s = await startApp({}, (app) => { app.get('/', async () => 'ok') })
  t.teardown(() => s.close())
  const server = s.app.server as unknown as { headersTimeout: number, requestTimeout: number, timeout: number, maxConnections: number }
  t.equal(server.headersTimeout, 20_000, 'headers within 20 s')
  t.equal(server.requestTimeout, 60_000, 'the whole request within 60 s')
  t.equal(server.timeout, 90_000, 'idle connections closed after 90 s')
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

t.test('over a real socket: a client that stops reading a response is cut by connectionTimeout alone', async (t) => {
  // A response far larger than the socket buffers of both ends, to a client that never reads it:
  // the request was received whole (headersTimeout and requestTimeout are done with it) and the
  // response never ends (keepAliveTimeout is not armed), so only the idle-socket timer can close it.
  const big = Buffer.alloc(64 * 1024 * 1024, 'a')
  const stalled = async (listener: { connectionTimeout: number } | false): Promise<{ closed: Promise<number>, close: () => Promise<void> }> => {
    const s = await startApp({ listener }, (app) => { app.get('/big', async (_request, reply) => reply.type('application/octet-stream').send(big)) })
    let closed: Promise<number> | undefined
    const accepted = new Promise<void>((resolve) => {
      s.app.server.once('secureConnection', (socket: TLSSocket) => {
        closed = closedWithin(socket)
        resolve()
      })
    })
    const client = tlsConnect({ host: '127.0.0.1', port: s.port, ca: s.cert as string, servername: 'localhost' }, () => {
      client.write('GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n')
      client.pause()
    })
    client.on('error', () => {})
    await accepted
    return {
      closed: closed as Promise<number>,
      close: async () => {
        client.destroy()
        await s.close()
      }
    }
  }

  const cut = await stalled({ connectionTimeout: 500 })
  t.teardown(cut.close)
  const elapsed = await cut.closed
  t.ok(elapsed >= 400 && elapsed < 30_000, `closed by the server ${elapsed} ms after the connection, its response unread: not before the 500 ms timeout`)

  const kept = await stalled(false)
  t.teardown(kept.close)
  const outcome = await Promise.race([kept.closed.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 2_000, 'open'))])
  t.equal(outcome, 'open', 'with Node\'s and Fastify\'s defaults (listener: false) the same connection is still open after 2 s, four times that timeout')
})
