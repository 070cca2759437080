/**
 * The `suite` variant with Prometheus metrics on (`METRICS=true`: the metrics plugin, prom-client's
 * default process metrics, the metrics listener on a free loopback port), to be measured side by
 * side with `suite` in the same run: with no event firing (no tampered cookie, no redirect, no
 * reload), the anonymous, read and write paths must cost what they cost without metrics. The
 * runner's keep-alive connections make one handshake each, counted once.
 * @internal
 */
import Fastify, { type FastifyInstance } from 'fastify'
import secureHttps, { resolveConfig, serverOptions } from 'fastify-secure-https'
import { serveFastify } from './control.js'
import { sessionRoutes } from './routes.js'

await serveFastify(async (env) => {
  const config = resolveConfig({
    host: '127.0.0.1',
    port: 0,
    allowedHosts: [env.host],
    tls: { mode: 'self-signed', dir: env.tlsDir },
    httpsRedirect: { port: 0 },
    hsts: { maxAge: 31536000, includeSubDomains: true },
    securityHeaders: {},
    secureSession: { keys: [env.sessionKey] },
    errorHandler: true,
    metrics: { port: 0 }
  })
  const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(secureHttps, config)
  sessionRoutes(app)
  return app
}, (app) => app.httpsRedirect.address()?.port ?? null)
