/**
 * The floor for the security headers: bare Fastify over TLS plus one onRequest hook that copies a
 * constant list of headers. The list is the one the suite sent on the same request in this run
 * (the runner reads it from the suite-headers variant's sample response and hands it over before
 * the first measured request), so the floor follows the suite's header set as it changes. What
 * suite-headers costs beyond this is the suite's own work; what this costs beyond bare Fastify is
 * the price of sending those headers at all.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { serveFastify } from './control.ts'

let headers: ReadonlyArray<readonly [string, string]> = []

await serveFastify(async (env) => {
  const app = Fastify({ logger: false, https: { key: env.key, cert: env.cert } }) as unknown as FastifyInstance
  app.addHook('onRequest', (_request, reply, done) => {
    for (const [name, value] of headers) reply.header(name, value)
    done()
  })
  app.get('/anonymous', async () => ({ hello: 'world' }))
  return app
}, () => null, (list) => { headers = list })
