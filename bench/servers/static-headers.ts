/**
 * The floor for the security headers: bare Fastify over TLS plus one onRequest hook that copies the
 * suite's exact header set (HSTS and the eleven helmet-derived headers) from a constant list. What
 * the suite-headers variant costs beyond this is the suite's own work; what this costs beyond bare
 * Fastify is the price of sending those twelve headers at all.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { serveFastify } from './control.js'

const HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['strict-transport-security', 'max-age=31536000; includeSubDomains'],
  ['content-security-policy', "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'none';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"],
  ['cross-origin-opener-policy', 'same-origin'],
  ['cross-origin-resource-policy', 'same-origin'],
  ['origin-agent-cluster', '?1'],
  ['referrer-policy', 'strict-origin-when-cross-origin'],
  ['x-content-type-options', 'nosniff'],
  ['x-dns-prefetch-control', 'off'],
  ['x-download-options', 'noopen'],
  ['x-frame-options', 'SAMEORIGIN'],
  ['x-permitted-cross-domain-policies', 'none'],
  ['x-xss-protection', '0']
]

await serveFastify(async (env) => {
  const app = Fastify({ logger: false, https: { key: env.key, cert: env.cert } }) as unknown as FastifyInstance
  app.addHook('onRequest', (_request, reply, done) => {
    for (const [name, value] of HEADERS) reply.header(name, value)
    done()
  })
  app.get('/anonymous', async () => ({ hello: 'world' }))
  return app
})
