/**
 * A URL refused by the configuration is quoted in the message, which goes to the terminal and the
 * logs: the user and password it carries are not.
 */
import fc from 'fast-check'
import t from 'tap'
import { ConfigError, loadConfig, resolveConfig } from '../index.ts'
import { configErrorOf } from './helpers/config.ts'
import { growth } from './helpers/linear.ts'

const PASSWORD = 'Tq7wPassw0rdZ'
const TOKEN = 'ghp_tok3nValue9'

t.test('loadConfig: a refused URL is quoted without its user and password', async (t) => {
  const env = {
    TLS_MODE: 'acme',
    ACME_DOMAINS: 'example.com',
    ACME_EMAIL: 'admin@example.com',
    ACME_ON_DEMAND_ASK: `https://ops:${PASSWORD}@ask.example/allow`,
    ACME_DIRECTORY: `http://${TOKEN}@acme.example/directory`
  }
  const error = configErrorOf(() => loadConfig(env))
  t.match(error.message, /ACME_ON_DEMAND_ASK: "https:\/\/\*\*\*@ask\.example\/allow" is not an ask URL/, 'still names the variable and the URL, without its credentials')
  t.match(error.message, /ACME_DIRECTORY: "http:\/\/\*\*\*@acme\.example\/directory" is not an ACME directory/)
  for (const secret of [PASSWORD, TOKEN, 'ops:']) {
    t.notOk(error.message.includes(secret), `the message does not hold ${secret}`)
    t.notOk(JSON.stringify(error.issues).includes(secret), `nor do the issues (${secret})`)
  }
})

t.test('code options: the same', async (t) => {
  const error = configErrorOf(() => resolveConfig({ tls: { mode: 'acme', acme: { domains: ['example.com'], email: 'a@example.com', onDemand: { ask: `https://u:${PASSWORD}@h.example/` } } } }))
  t.match(error.message, /"https:\/\/\*\*\*@h\.example\/" is not an ask URL/)
  t.notOk(error.message.includes(PASSWORD))
})

t.test('ConfigError: credentials in any URL of a message are hidden; the rest is kept', async (t) => {
  const error = new ConfigError([{ path: 'x', message: `"redis://:${PASSWORD}@db:6379" and "ftp://a:b@c/d@e" and "mailto:x@y" and "https://h/p?u=a@b" and "x://" ` }])
  t.equal(error.issues[0]?.message, '"redis://***@db:6379" and "ftp://***@c/d@e" and "mailto:x@y" and "https://h/p?u=a@b" and "x://" ')
  fc.assert(fc.property(fc.string(), fc.string({ minLength: 1 }).filter((s) => !/[\s/?#@"\\]/.test(s)), (before, secret) => {
    const message = new ConfigError([{ path: 'x', message: `${before} "https://u:${secret}@host/path"` }]).issues[0]?.message ?? ''
    return message.endsWith('"https://***@host/path"')
  }), { numRuns: 2000 })
})

t.test('hiding credentials takes time linear in the message\'s length', async (t) => {
  const make = (n: number): string => 'a://b:'.repeat(n)
  const fit = growth(make, (message) => new ConfigError([{ path: 'x', message }]), [1000, 2000, 4000, 8000, 16000], { rounds: 21, repeat: 5 })
  t.ok(fit.exponent < 1.5, `linear: ${fit.text}`)
})
