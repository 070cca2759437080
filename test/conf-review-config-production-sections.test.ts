/**
 * The production rules cannot be switched off one section at a time: `production: false` inside a
 * section of the aggregate's options (tls, proxyTrust, hostAuthorization, secureSession, metrics)
 * no longer overrides the root `production: true`. It did: `tls: { mode: 'self-signed',
 * production: false }` started in production with a self-signed certificate, `proxyTrust: { trust:
 * true, production: false }` trusted every peer.
 */
import Fastify from 'fastify'
import t from 'tap'
import { resolveConfig, secureSession } from '../index.ts'
import { configErrorOf } from './helpers/config.ts'

const key = 'ylE0anVsDPz1Szgj+866K888dHSbhoeUD9uLsmorf6c='
const good = { production: true, tls: { mode: 'proxy' as const }, proxyTrust: { trust: ['127.0.0.1'] }, allowedHosts: ['example.com'], secureSession: { keys: [key] } }

t.test('a section\'s production: false does not lift the production rules', async (t) => {
  t.ok(resolveConfig(good), 'the base passes')
  const cases: Array<[string, object, RegExp]> = [
    ['tls', { tls: { mode: 'self-signed', production: false } }, /tls\.mode: self-signed certificates are refused in production/],
    ['proxyTrust', { proxyTrust: { trust: true, production: false } }, /proxyTrust\.trust: trusting every peer is refused in production/],
    ['hostAuthorization', { allowedHosts: [], httpsRedirect: false, hostAuthorization: { production: false } }, /hostAuthorization\.allowedHosts: is required in production/],
    ['secureSession', { secureSession: { production: false } }, /secureSession\.keys: is required in production/],
    ['metrics', { metrics: { host: '203.0.113.7', production: false } }, /metrics\.host: is 203\.0\.113\.7, a public address/]
  ]
  for (const [name, options, message] of cases) {
    t.match(configErrorOf(() => resolveConfig({ ...good, ...options })).message, message, name)
  }
})

t.test('a section may still ask for the production rules in development', async (t) => {
  t.match(configErrorOf(() => resolveConfig({ tls: { mode: 'self-signed', production: true } })).message, /self-signed certificates are refused in production/)
  const config = resolveConfig({ ...good, production: false, tls: { mode: 'proxy' } })
  t.equal(config.tls !== false && config.tls.production, false, 'development stays development')
})

t.test('production: session cookies without Secure are refused', async (t) => {
  const error = configErrorOf(() => resolveConfig({ ...good, secureSession: { keys: [key], secure: false } }))
  t.match(error.message, /secureSession\.secure: a session cookie without Secure is refused in production/)
  t.equal(resolveConfig({ secureSession: { secure: false } }).secureSession !== false, true, 'development may turn it off')
  const proxied = resolveConfig(good)
  t.equal(proxied.secureSession !== false && proxied.secureSession.secure, true, 'TLS at a proxy: Secure')
  // The rule is the secureSession section's own: the plugin registered alone refuses it too.
  const alone = Fastify()
  t.teardown(() => alone.close())
  await alone.register(secureSession, { production: true, keys: [key], secure: false }).ready().then(() => t.fail('registered'), (error: unknown) => {
    t.match((error as Error).message, /secure: a session cookie without Secure is refused in production/, 'the secureSession plugin alone refuses it')
  })
  const plain = configErrorOf(() => resolveConfig({ ...good, tls: { mode: 'off' } }))
  t.match(plain.message, /plain HTTP is refused in production/)
  t.notMatch(plain.message, /without Secure/, 'TLS_MODE=off in production is one problem, not a second about the cookie it implies')
})
