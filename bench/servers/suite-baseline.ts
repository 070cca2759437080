/**
 * The suite variant built from another checkout (`--baseline PATH`: its `dist/index.js`), with the
 * same production environment, routes and requests as `suite`: a change measured before and after
 * in the same run, side by side with bare Fastify and the control.
 * @internal
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { pathToFileURL } from 'node:url'
import { serveFastify } from './control.js'
import { sessionRoutes } from './routes.js'

const path = process.env.BENCH_BASELINE
if (path === undefined || path === '') throw new Error('BENCH_BASELINE is not set: run the benchmark with --baseline PATH')
const baseline = await import(pathToFileURL(path).href) as typeof import('fastify-secure-https')

await serveFastify(async () => {
  const config = baseline.loadConfig(process.env)
  const app = Fastify({ logger: false, ...(await baseline.serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(baseline.default, config)
  sessionRoutes(app)
  return app
}, (app) => app.httpsRedirect.address()?.port ?? null)
