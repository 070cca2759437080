/**
 * Production mode fails closed: NODE_ENV is trimmed and compared without case, and only unset,
 * empty, development, dev and test mean development. Before, `Production`, ` PRODUCTION` and
 * `production\r` (a CRLF env file sourced by a shell) silently turned every production rule off.
 */
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { hsts, isProductionEnv, loadConfig, secureHttps } from '../index.ts'
import { configErrorOf } from './helpers/config.ts'
import { captureLogs } from './helpers/logs.ts'

const productionSpellings = ['production', 'Production', 'PRODUCTION', ' production', 'production ', 'production\r', '\tproduction\r\n', 'prod', 'staging', 'live', 'productoin', 'testing', 'developmen']
const developmentSpellings = [undefined, '', ' ', 'development', 'Development', ' DEV ', 'dev', 'test', 'TEST\r', 'test\n']

t.test('isProductionEnv: only unset, empty, development, dev and test mean development', async (t) => {
  for (const value of productionSpellings) t.equal(isProductionEnv(value), true, `${JSON.stringify(value)} is production`)
  for (const value of developmentSpellings) t.equal(isProductionEnv(value), false, `${JSON.stringify(value)} is development`)
})

t.test('loadConfig applies the production rules to every production spelling', async (t) => {
  for (const value of productionSpellings) {
    // Zero configuration is fine in development and refused in production (TLS_MODE, SESSION_KEYS and ALLOWED_HOSTS are required).
    const error = configErrorOf(() => loadConfig({ NODE_ENV: value }))
    const variables = error.issues.map((issue) => issue.variable)
    t.ok(variables.includes('TLS_MODE'), `NODE_ENV=${JSON.stringify(value)}: TLS_MODE is required`)
    t.ok(variables.includes('SESSION_KEYS'), `NODE_ENV=${JSON.stringify(value)}: SESSION_KEYS is required`)
    t.ok(variables.includes('ALLOWED_HOSTS'), `NODE_ENV=${JSON.stringify(value)}: ALLOWED_HOSTS is required`)
  }
  for (const value of developmentSpellings) {
    t.equal(loadConfig({ NODE_ENV: value }).production, false, `NODE_ENV=${JSON.stringify(value)} is a development config`)
  }
})

t.test('a plugin registered on its own reads NODE_ENV the same way', async (t) => {
  const saved = process.env.NODE_ENV
  t.teardown(() => {
    if (saved === undefined) delete process.env.NODE_ENV
    else process.env.NODE_ENV = saved
  })
  // A max-age under 300 s draws a production warning from the hsts plugin, and none in development.
  const warned = async (nodeEnv: string): Promise<boolean> => {
    process.env.NODE_ENV = nodeEnv
    const logs = captureLogs('warn')
    const app = Fastify({ logger: logs.logger })
    await app.register(hsts, { maxAge: 100 })
    await app.ready()
    await app.close()
    return logs.lines.some((line) => /under 300 seconds/.test(line.msg ?? ''))
  }
  for (const value of ['Production', 'production\r', ' PRODUCTION', 'staging']) t.equal(await warned(value), true, `NODE_ENV=${JSON.stringify(value)} applies the production rules`)
  for (const value of ['development', 'Test', ' dev ']) t.equal(await warned(value), false, `NODE_ENV=${JSON.stringify(value)} does not`)
})

t.test('the mode in force is logged at start', async (t) => {
  for (const production of [false, true]) {
    const logs = captureLogs('info')
    const app = Fastify({ logger: logs.logger })
    await app.register(secureHttps, {
      production,
      // Plain HTTP is refused in production: TLS at a proxy starts without certificates.
      ...(production ? { tls: { mode: 'proxy' as const }, proxyTrust: { trust: ['127.0.0.1'] } } : { tls: false as const }),
      allowedHosts: ['example.com'],
      secureSession: { keys: [randomBytes(32).toString('base64')] }
    })
    await app.ready()
    const line = logs.lines.find((entry) => entry.msg?.startsWith('fastify-secure-https: ') === true && entry.production !== undefined)
    t.ok(line, 'a start line names the mode')
    t.equal(line?.production, production)
    t.match(line?.msg ?? '', production ? /production rules on/ : /development mode/)
    await app.close()
  }
})
