/**
 * Hook mode (behind a TLS-terminating proxy) answers a plain HTTP request that has a body with its
 * redirect and Connection: close, as the listener does: the body is not read, and Node would
 * otherwise drain it for as long as the client goes on sending. Real sockets.
 */
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { httpsRedirect, serverOptions } from '../index.ts'
import { endlessBody } from './helpers/slow-client.ts'

t.test('hook mode: a request with an endless body gets its redirect, or its 400, with Connection: close, and the connection closes', async (t) => {
  const options = { tls: { mode: 'proxy' as const }, proxyTrust: { trust: ['10.0.0.1'] } }
  const app = Fastify({ ...(await serverOptions(options)) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(httpsRedirect, { mode: 'hook', allowedHosts: ['example.com'] })
  app.post('/upload', async () => 'never reached over plain HTTP')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  for (const [label, head, status] of [
    ['redirect', 'POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 107374182400\r\n\r\n', /^HTTP\/1\.1 30[78] /],
    ['unknown host', 'POST /upload HTTP/1.1\r\nHost: evil.test\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n', /^HTTP\/1\.1 400 /]
  ] as const) {
    // Fastify's own timeouts are off (requestTimeout 0 by default): without the close, the drain
    // goes on until the cap.
    const piece = Buffer.alloc(16 * 1024, 'a')
    const outcome = await endlessBody(port, head, () => piece, 5_000)
    t.match(outcome.head, status, `${label}: answered`)
    t.match(outcome.head, /\r\nconnection: close\r\n/i, `${label}: with Connection: close`)
    t.ok(outcome.closedAfter < 5_000, `${label}: the connection closed after ${outcome.closedAfter} ms`)
  }
})
