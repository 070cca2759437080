/**
 * In production, `tls: false` is refused as TLS_MODE=off is: it resolves to plain HTTP, session
 * cookies without Secure, no redirect and no HSTS. Before, only `tls: { mode: 'off' }` was refused.
 */
import Fastify from 'fastify'
import t from 'tap'
import secureHttps, { resolveConfig } from '../index.ts'
import { configErrorOf } from './helpers/config.ts'

const key = 'ylE0anVsDPz1Szgj+866K888dHSbhoeUD9uLsmorf6c='
const base = { production: true, allowedHosts: ['example.com'], secureSession: { keys: [key] } }

t.test('production: tls: false is refused like TLS_MODE=off, with every other problem', async (t) => {
  const error = configErrorOf(() => resolveConfig({ ...base, tls: false }))
  t.match(error.message, /tls: plain HTTP is refused in production/)
  t.match(error.message, /use files, acme, or proxy when TLS ends at a load balancer/)
  const both = configErrorOf(() => resolveConfig({ ...base, tls: false, allowedHosts: [] }))
  t.ok(both.issues.length >= 2, 'reported beside the others')

  const app = Fastify()
  t.teardown(() => app.close())
  app.register(secureHttps, { ...base, tls: false })
  await t.rejects(Promise.resolve(app.ready()), /plain HTTP is refused in production/, 'the aggregate refuses it at start')
})

t.test('development: tls: false still turns TLS off', async (t) => {
  const config = resolveConfig({ tls: false })
  t.equal(config.tls, false)
  t.equal(config.secureSession !== false && config.secureSession.secure, false)
})
