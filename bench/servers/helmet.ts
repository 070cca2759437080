/**
 * Bare Fastify over TLS plus @fastify/helmet with its defaults (which include HSTS): what the
 * security headers cost when helmet runs on every request, next to the suite's precomputed set.
 */
import fastifyHelmet from '@fastify/helmet'
import Fastify, { type FastifyInstance } from 'fastify'
import { benchEnvironment, controlled, failed } from './control.js'

try {
  const env = benchEnvironment()
  const app = Fastify({ logger: false, https: { key: env.key, cert: env.cert } }) as unknown as FastifyInstance
  await app.register(fastifyHelmet)
  app.get('/anonymous', async () => ({ hello: 'world' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  controlled(typeof address === 'object' && address !== null ? address.port : 0, null, () => app.close())
} catch (error) {
  failed(error)
}
