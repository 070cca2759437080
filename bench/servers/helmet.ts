/**
 * Bare Fastify over TLS plus @fastify/helmet with its defaults (which include HSTS): what the
 * security headers cost when helmet runs on every request, next to the suite's precomputed set.
 */
import fastifyHelmet from '@fastify/helmet'
import Fastify, { type FastifyInstance } from 'fastify'
import { serveFastify } from './control.ts'

await serveFastify(async (env) => {
  const app = Fastify({ logger: false, https: { key: env.key, cert: env.cert } }) as unknown as FastifyInstance
  await app.register(fastifyHelmet)
  app.get('/anonymous', async () => ({ hello: 'world' }))
  return app
})
