/**
 * The suite as a user runs it in production, for the suite and suite-headers variants: the
 * configuration read from the environment by `loadConfig(process.env)` (NODE_ENV=production,
 * TLS_MODE=files with the runner's certificate in a folder of its own, SESSION_KEYS, ALLOWED_HOSTS,
 * the HTTP redirect listener on a free port; HSTS, the security headers and the error handler at
 * their production defaults), then `serverOptions` + `secureHttps`. Without `session`, the same
 * configuration with `secureSession: false`, as an app that keeps no session would pass it.
 * `suite` is the package to run: this checkout's build, or another's (`--baseline`).
 * @internal
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { serveFastify } from './control.ts'

/** The parts of the package the suite variants use. @internal */
export type SuitePackage = Pick<typeof import('fastify-secure-https'), 'default' | 'loadConfig' | 'serverOptions'>

/**
 * Starts the suite variant; `routes` adds its routes. `suite` defaults to this checkout's build,
 * imported only then, so that a `--baseline` server loads the other build alone. @internal
 */
export async function serveSuite (session: boolean, routes: (app: FastifyInstance) => void, given?: SuitePackage): Promise<void> {
  const suite = given ?? await import('fastify-secure-https')
  await serveFastify(async () => {
    const loaded = suite.loadConfig(process.env)
    const config = session ? loaded : { ...loaded, secureSession: false as const }
    const app = Fastify({ logger: false, ...(await suite.serverOptions(config)) }) as unknown as FastifyInstance
    await app.register(suite.default, config)
    routes(app)
    return app
  }, (app) => app.httpsRedirect.address()?.port ?? null)
}
