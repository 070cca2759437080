/**
 * An app that uses sessions, typed the @fastify/secure-session way, and loads both packages' types.
 * Compiled by test/types.test.ts with skipLibCheck false, against the built declarations (dist/).
 */
import fastifySecureSession, { type Session } from '@fastify/secure-session'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import secureHttps, { loadConfig, secureSession, serverOptions } from 'fastify-secure-https'

declare module '@fastify/secure-session' {
  interface SessionData {
    user: string
    visits: number
  }
}

const config = loadConfig(process.env)
const app = Fastify({ ...(await serverOptions(config)) })
await app.register(secureHttps, config)

app.get('/', async (request) => {
  const session: Session = request.session
  const user: string | undefined = session.get('user')
  const visits: number | undefined = request.session.visits
  // @ts-expect-error user is a string
  request.session.set('user', 42)
  request.session.set('visits', (visits ?? 0) + 1)
  request.session.options({ maxAge: 3600 })
  request.session.regenerate(['user'])
  const copy = request.session.data()
  return { user: user ?? null, copy, changed: request.session.changed, deleted: request.session.deleted }
})

app.get('/decorators', async () => {
  const made = app.createSecureSession({ user: 'alice' })
  const sealed: string = app.encodeSecureSession(made)
  return { user: app.decodeSecureSession(sealed)?.get('user') ?? null }
})

// The docs' `{ ...config, <section> }` examples (docs/migrating.md, docs/host-authorization.md,
// docs/observability.md), each registered in a child context of its own.
const tenants = new Set<string>()
const registry = new Registry()
await app.register(async (child) => {
  await child.register(secureHttps, { ...loadConfig(process.env), securityHeaders: { frameguard: { action: 'deny' } } })
})
await app.register(async (child) => {
  await child.register(secureHttps, { ...config, hostAuthorization: { isAllowed: (host) => tenants.has(host) } })
})
await app.register(async (child) => {
  await child.register(secureHttps, { ...config, metrics: { registry, listener: false } })
})

// The plugin alone, and @fastify/secure-session's plugin value, type-check side by side.
export const plugins = [secureSession, fastifySecureSession]
export default app
