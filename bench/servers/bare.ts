/**
 * Bare Fastify over TLS: the baseline every ratio is taken against. Same certificate, same route
 * shape, nothing else: no headers, no session, Node's default TLS settings.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { serveFastify } from './control.ts'

await serveFastify(async (env) => {
  const app = Fastify({ logger: false, https: { key: env.key, cert: env.cert } }) as unknown as FastifyInstance
  app.get('/anonymous', async () => ({ hello: 'world' }))
  return app
})
