/**
 * The suite with everything on, as a user would run it: `serverOptions` + `secureHttps` with a
 * self-signed certificate (the runner's pair, already in the TLS_DIR cache), the HTTP redirect
 * listener on a free port, HSTS for a real host name (so the header is sent: it is skipped only for
 * localhost), the security headers, the session with a configured key, and the production error
 * handler.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import secureHttps, { resolveConfig, serverOptions } from 'fastify-secure-https'
import { benchEnvironment, controlled, failed } from './control.js'
import { sessionRoutes } from './routes.js'

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
    secureSession: { keys: [env.sessionKey] },
    errorHandler: true
  })
  const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(secureHttps, config)
  sessionRoutes(app)
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
