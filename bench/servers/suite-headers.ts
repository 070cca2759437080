/**
 * The suite without its session: TLS, the redirect listener, proxy trust, HSTS, the security
 * headers and the production error handler. Against bare Fastify it gives the cost of the headers
 * (and the hooks deciding them) alone.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import secureHttps, { resolveConfig, serverOptions } from 'fastify-secure-https'
import { benchEnvironment, controlled, failed } from './control.js'

try {
  const env = benchEnvironment()
  const config = resolveConfig({
    host: '127.0.0.1',
    port: 0,
    allowedHosts: [env.host],
    tls: { mode: 'self-signed', dir: env.tlsDir },
    httpsRedirect: { port: 0 },
    hsts: { maxAge: 31536000, includeSubDomains: true },
    securityHeaders: {},
    secureSession: false,
    errorHandler: true
  })
  const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(secureHttps, config)
  app.get('/anonymous', async () => ({ hello: 'world' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  controlled(
    typeof address === 'object' && address !== null ? address.port : 0,
    app.httpsRedirect.address()?.port ?? null,
    () => app.close()
  )
} catch (error) {
  failed(error)
}
