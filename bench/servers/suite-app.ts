/**
 * The suite as a user would run it, for the suite and suite-headers variants: `serverOptions` +
 * `secureHttps` with a self-signed certificate (the runner's pair, already in the TLS_DIR cache), the
 * HTTP redirect listener on a free port, HSTS for a real host name (so the header is sent: it is
 * skipped only for localhost), the security headers and the production error handler; the session
 * with a configured key when `session` is true.
 * @internal
 */
import Fastify, { type FastifyInstance } from 'fastify'
import secureHttps, { resolveConfig, serverOptions } from 'fastify-secure-https'
import { serveFastify } from './control.js'

/** Starts the suite variant; `routes` adds its routes. @internal */
export async function serveSuite (session: boolean, routes: (app: FastifyInstance) => void): Promise<void> {
  await serveFastify(async (env) => {
    const config = resolveConfig({
      host: '127.0.0.1',
      port: 0,
      allowedHosts: [env.host],
      tls: { mode: 'self-signed', dir: env.tlsDir },
      httpsRedirect: { port: 0 },
      hsts: { maxAge: 31536000, includeSubDomains: true },
      securityHeaders: {},
      secureSession: session ? { keys: [env.sessionKey] } : false,
      errorHandler: true
    })
    const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
    await app.register(secureHttps, config)
    routes(app)
    return app
  }, (app) => app.httpsRedirect.address()?.port ?? null)
}
