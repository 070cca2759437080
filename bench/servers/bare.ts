/**
 * Bare Fastify over TLS: the baseline every ratio is taken against. Same certificate, same route
 * shape, nothing else: no headers, no session, Node's default TLS settings.
 */
import Fastify from 'fastify'
import { benchEnvironment, controlled, failed } from './control.js'

try {
  const env = benchEnvironment()
  const app = Fastify({ logger: false, https: { key: env.key, cert: env.cert } })
  app.get('/anonymous', async () => ({ hello: 'world' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  controlled(typeof address === 'object' && address !== null ? address.port : 0, null, () => app.close())
} catch (error) {
  failed(error)
}
