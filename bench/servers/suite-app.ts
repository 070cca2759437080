/**
 * The suite as a user runs it in production, for the suite and suite-headers variants: the
 * configuration read from the environment by `loadConfig(process.env)` (NODE_ENV=production,
 * TLS_MODE=files with the runner's certificate in a folder of its own, SESSION_KEYS, ALLOWED_HOSTS,
 * the HTTP redirect listener on a free port; HSTS, the security headers and the error handler at
 * their production defaults), then `serverOptions` + `secureHttps`. Without `session`, the same
 * configuration with `secureSession: false`, as an app that keeps no session would pass it.
 * @internal
 */
import Fastify, { type FastifyInstance } from 'fastify'
import secureHttps, { loadConfig, serverOptions } from 'fastify-secure-https'
import { serveFastify } from './control.js'

/** Starts the suite variant; `routes` adds its routes. @internal */
export async function serveSuite (session: boolean, routes: (app: FastifyInstance) => void): Promise<void> {
  await serveFastify(async () => {
    const loaded = loadConfig(process.env)
    const config = session ? loaded : { ...loaded, secureSession: false as const }
    const app = Fastify({ logger: false, ...(await serverOptions(config)) }) as unknown as FastifyInstance
    await app.register(secureHttps, config)
    routes(app)
    return app
  }, (app) => app.httpsRedirect.address()?.port ?? null)
}
