/**
 * `fastify.httpsRedirect.listening()`: the redirect listener starts in an onListen hook, after
 * `await app.listen()` has returned, so `address()` is still null then; `listening()` waits for it,
 * as `secureHttpsMetrics.listening()` does for the metrics listener.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { createServer } from 'node:net'
import t from 'tap'
import { httpsRedirect } from '../index.ts'
import { request } from './helpers/http.ts'

function build (options: Record<string, unknown> = {}): FastifyInstance {
  const app = Fastify()
  app.register(httpsRedirect, { port: 0, httpsPort: 8443, allowedHosts: ['localhost'], ...options })
  return app
}

t.test('listening() resolves with the address once the listener listens, and it answers there', async (t) => {
  const app = build()
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = await app.httpsRedirect.listening()
  t.ok(address !== null && address.port > 0, 'an address with its port')
  t.same(app.httpsRedirect.address(), address, 'the one address() gives from then on')
  const response = await request(`http://localhost:${address?.port ?? 0}/a?b=1`)
  t.equal(response.status, 307)
  t.equal(response.headers.location, 'https://localhost:8443/a?b=1')
  t.equal(await app.httpsRedirect.listening(), address, 'asked again, the same answer')
})

t.test('listening() rejects with ERR_SECURE_HTTPS_REDIRECT_LISTEN when the port is taken', async (t) => {
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const port = (taken.address() as { port: number }).port
  const app = build({ port, host: '127.0.0.1' })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  await t.rejects(app.httpsRedirect.listening(), { code: 'ERR_SECURE_HTTPS_REDIRECT_LISTEN', message: /EADDRINUSE/ })
  t.match(app.httpsRedirect.error(), { code: 'ERR_SECURE_HTTPS_REDIRECT_LISTEN' })
})

t.test('listening() resolves with null in hook mode, and for an app closed before it listened', async (t) => {
  const hook = build({ mode: 'hook' })
  await hook.ready()
  t.equal(await hook.httpsRedirect.listening(), null, 'hook mode has no listener')
  await hook.close()

  const closed = build()
  await closed.ready()
  await closed.close()
  t.equal(await closed.httpsRedirect.listening(), null, 'closed before listen()')
})
