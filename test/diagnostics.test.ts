/**
 * Security events go out on node:diagnostics_channel as well as to the log; optional packages fail
 * with the package to install.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { channel, subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import { channelNames, subscribeDiagnostics, timedStoreCall, type SecurityEventMessage, type SessionStoreMessage } from '../diagnostics.ts'
import { httpsRedirect, proxyTrust, serverOptions } from '../index.ts'
import { importOptional } from '../optional.ts'
import { securityEvent, unloggedSecurityEvent } from '../plugins/events.ts'
import { captureLogs } from './helpers/logs.ts'

t.test('a security event is logged and published on its channel', async (t) => {
  const logs = captureLogs('warn')
  const { log } = Fastify({ logger: logs.logger })
  const seen: SecurityEventMessage[] = []
  const listener = (message: unknown): void => { seen.push(message as SecurityEventMessage) }
  securityEvent(log, 'host.unknown', { host: 'before.test' }, 'not published: no subscriber yet')
  subscribe(channelNames.securityEvent, listener)
  t.teardown(() => unsubscribe(channelNames.securityEvent, listener))
  securityEvent(log, 'host.unknown', { host: 'evil.test' }, 'request for a host not in ALLOWED_HOSTS')
  t.same(seen, [{ event: 'host.unknown', fields: { host: 'evil.test' }, message: 'request for a host not in ALLOWED_HOSTS', logged: true }])
  t.equal(logs.lines.filter((line) => line.securityEvent === 'host.unknown').length, 2, 'both are logged')
})

t.test('a missing optional package names itself, the setting and the install command', async (t) => {
  const missing = (): Promise<never> => Promise.reject(Object.assign(new Error("Cannot find package 'acme-client'"), { code: 'ERR_MODULE_NOT_FOUND' }))
  await t.rejects(importOptional('acme-client', missing), {
    code: 'ERR_SECURE_HTTPS_MISSING_DEPENDENCY',
    message: /^TLS_MODE=acme .* needs the package acme-client, which is not installed; install it in the app: npm install acme-client$/
  })
  // A failure that is not a missing package (a broken install) is passed through, and not cached.
  await t.rejects(importOptional('acme-client', () => Promise.reject(new SyntaxError('broken'))), SyntaxError)
  const module = await importOptional('acme-client', () => import('acme-client'))
  t.type(module.Client, 'function', 'an installed package loads')
  t.equal(await importOptional('acme-client', () => Promise.reject(new Error('not called again'))), module, 'and is loaded once')
})

t.test('an event over the log\'s rate limit is published without fields and not logged', async (t) => {
  const seen: SecurityEventMessage[] = []
  const stop = subscribeDiagnostics('securityEvent', (message) => { seen.push(message) })
  t.teardown(stop)
  unloggedSecurityEvent('session.tampered')
  t.same(seen, [{ event: 'session.tampered', fields: {}, message: 'not logged: over the rate limit of this event', logged: false }])
  t.ok(Object.isFrozen(seen[0]?.fields), 'the shared empty fields cannot be changed by a subscriber')
})

t.test('floods: every spoofed forwarding header and every unknown redirect host is published, the log keeps its limit', async (t) => {
  const logs = captureLogs('warn')
  const options = { tls: { mode: 'proxy' as const }, proxyTrust: { trust: ['10.0.0.1'] } }
  const app = Fastify({ logger: logs.logger, ...(await serverOptions(options)) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(proxyTrust, { trust: ['10.0.0.1'], eventsPerMinute: 2 })
  await app.register(httpsRedirect, { mode: 'hook', allowedHosts: ['example.com'] })
  app.get('/', async () => 'ok')
  const seen: SecurityEventMessage[] = []
  const stop = subscribeDiagnostics('securityEvent', (message) => { seen.push(message) })
  t.teardown(stop)
  for (let i = 0; i < 5; i++) {
    await app.inject({ url: '/', remoteAddress: '203.0.113.9', headers: { host: 'example.com', 'x-forwarded-proto': 'https' } })
  }
  const spoofed = seen.filter((message) => message.event === 'proxy.untrusted-forwarded')
  t.same(spoofed.map((message) => message.logged), [true, true, false, false, false], 'five published, two logged')
  t.equal(logs.lines.filter((line) => line.securityEvent === 'proxy.untrusted-forwarded').length, 2)

  for (let i = 0; i < 12; i++) {
    const response = await app.inject({ url: '/', remoteAddress: '10.0.0.1', headers: { host: 'evil.test' } })
    t.equal(response.statusCode, 400)
  }
  const unknown = seen.filter((message) => message.event === 'redirect.unknown-host')
  t.equal(unknown.length, 12, 'twelve published')
  t.equal(unknown.filter((message) => message.logged).length, 10, 'ten logged: the redirect\'s limit')
})

t.test('redirects are published with their status, in the hook behind a proxy too', async (t) => {
  const app = Fastify({ ...(await serverOptions({ tls: { mode: 'proxy' }, proxyTrust: { trust: ['10.0.0.1'] } })) }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(httpsRedirect, { mode: 'hook', allowedHosts: ['example.com'] })
  app.get('/', async () => 'ok')
  app.post('/', async () => 'ok')
  const statuses: number[] = []
  const stop = subscribeDiagnostics('redirect', ({ status }) => { statuses.push(status) })
  t.teardown(stop)
  // Development (NODE_ENV unset): temporary redirects that browsers do not keep, 307 for every method.
  t.equal((await app.inject({ url: '/', headers: { host: 'example.com' } })).statusCode, 307)
  t.equal((await app.inject({ method: 'POST', url: '/', headers: { host: 'example.com' } })).statusCode, 307)
  t.same(statuses, [307, 307])
})

t.test('subscribeDiagnostics: typed, unsubscribes once, and a listener that throws cannot crash the process', async (t) => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  let calls = 0
  const stop = subscribeDiagnostics('redirect', () => {
    calls++
    throw new Error('a bug in the app\'s listener')
  })
  const redirects = channel(channelNames.redirect)
  t.ok(redirects.hasSubscribers)
  redirects.publish({ status: 301 })
  redirects.publish({ status: 301 })
  t.equal(calls, 2, 'the listener keeps being called')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(warnings.length, 1, 'its error is reported once, as a process warning')
  t.match(warnings[0]?.message, /a listener of fastify-secure-https:redirect threw \(reported once\): Error: a bug in the app's listener/)
  stop()
  stop()
  t.notOk(redirects.hasSubscribers, 'unsubscribed')
  redirects.publish({ status: 301 })
  t.equal(calls, 2)
})

t.test('timedStoreCall: the bare call without a subscriber, timed and published with one', async (t) => {
  const bare = Promise.resolve('value')
  t.equal(timedStoreCall('get', () => bare), bare, 'no subscriber: the very promise of the call, nothing added')
  const seen: SessionStoreMessage[] = []
  const stop = subscribeDiagnostics('sessionStore', (message) => { seen.push(message) })
  t.teardown(stop)
  t.equal(await timedStoreCall('get', async () => {
    await new Promise((resolve) => setTimeout(resolve, 20))
    return 'value'
  }), 'value')
  const failure = new Error('down')
  await t.rejects(timedStoreCall('set', () => Promise.reject(failure)), failure, 'the failure is passed on')
  t.equal(seen.length, 2)
  t.equal(seen[0]?.operation, 'get')
  t.ok((seen[0]?.seconds ?? 0) >= 0.015 && (seen[0]?.seconds ?? 1) < 1, `the duration in seconds: ${seen[0]?.seconds ?? 0}`)
  t.equal(seen[0]?.error, undefined)
  t.equal(seen[1]?.operation, 'set')
  t.equal(seen[1]?.error, failure)
})
