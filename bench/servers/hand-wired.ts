/**
 * What the suite replaces, wired by hand: Fastify over TLS with @fastify/helmet (defaults, which
 * include HSTS) and @fastify/secure-session with a configured key and the same cookie flags.
 */
import fastifyHelmet from '@fastify/helmet'
import fastifySecureSession from '@fastify/secure-session'
import Fastify, { type FastifyInstance } from 'fastify'
import { serveFastify } from './control.ts'
import { sessionRoutes } from './routes.ts'

await serveFastify(async (env) => {
  const app = Fastify({ logger: false, https: { key: env.key, cert: env.cert } }) as unknown as FastifyInstance
  await app.register(fastifyHelmet)
  await app.register(fastifySecureSession, {
    key: Buffer.from(env.sessionKey, 'base64'),
    cookieName: '__Host-session',
    expiry: 86400,
    cookie: { path: '/', httpOnly: true, secure: true, sameSite: 'lax', maxAge: 86400 }
  })
  sessionRoutes(app)
  return app
})
