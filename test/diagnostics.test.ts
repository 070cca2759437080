/**
 * Security events go out on node:diagnostics_channel as well as to the log; optional packages fail
 * with the package to install.
 */
import Fastify from 'fastify'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import { channelNames, type SecurityEventMessage } from '../diagnostics.js'
import { importOptional } from '../optional.js'
import { securityEvent } from '../plugins/events.js'
import { captureLogs } from './helpers/logs.js'

t.test('a security event is logged and published on its channel', async (t) => {
  const logs = captureLogs('warn')
  const { log } = Fastify({ logger: logs.logger })
  const seen: SecurityEventMessage[] = []
  const listener = (message: unknown): void => { seen.push(message as SecurityEventMessage) }
  securityEvent(log, 'host.unknown', { host: 'before.test' }, 'not published: no subscriber yet')
  subscribe(channelNames.securityEvent, listener)
  t.teardown(() => unsubscribe(channelNames.securityEvent, listener))
  securityEvent(log, 'host.unknown', { host: 'evil.test' }, 'request for a host not in ALLOWED_HOSTS')
  t.same(seen, [{ event: 'host.unknown', fields: { host: 'evil.test' }, message: 'request for a host not in ALLOWED_HOSTS' }])
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
