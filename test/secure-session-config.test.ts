import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { loadConfig, secureSession } from '../index.js'
import { effectiveCookieName, secureSessionSchema } from '../schemas/secure-session.js'
import { configErrorOf } from './helpers/config.js'

const good = (): string => randomBytes(32).toString('base64')
const MAKE = /make one with: openssl rand -base64 32 \(or npx fastify-secure-https keygen\)/

function messageOf (fn: () => unknown): string {
  return configErrorOf(fn).message
}

t.test('SESSION_KEYS: each bad key is refused with a message naming the variable and how to make a key, never echoing the key', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['not base64', 'this is not base64!', /SESSION_KEYS: a key is not valid base64/],
    ['URL-safe base64', randomBytes(32).toString('base64url'), /SESSION_KEYS: a key is not valid base64/],
    ['16 bytes', randomBytes(16).toString('base64'), /SESSION_KEYS: a key must be exactly 32 bytes \(got 16\)/],
    ['64 bytes', randomBytes(64).toString('base64'), /SESSION_KEYS: a key must be exactly 32 bytes \(got 64\)/],
    ['all one byte', Buffer.alloc(32, 0x41).toString('base64'), /SESSION_KEYS: a key is not random \(too few distinct bytes\)/],
    ['a counting pattern of 8 values', Buffer.from(Array.from({ length: 32 }, (_, i) => i % 8)).toString('base64'), /SESSION_KEYS: a key is not random/]
  ]
  for (const [label, key, pattern] of cases) {
    const message = messageOf(() => loadConfig({ SESSION_KEYS: `${good()},${key}` }))
    t.match(message, pattern, label)
    t.match(message, MAKE, `${label}: says how to make one`)
    t.notOk(message.includes(key), `${label}: the key is not in the message`)
  }
  const key = good()
  const repeated = messageOf(() => loadConfig({ SESSION_KEYS: `${key}, ${key}` }))
  t.match(repeated, /SESSION_KEYS: key 2 repeats an earlier key; each key must be distinct/)
  t.notOk(repeated.includes(key))

  const production = messageOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '127.0.0.1', ALLOWED_HOSTS: 'example.com' }))
  t.match(production, /SESSION_KEYS: is required in production/)
  t.match(production, MAKE)
})

t.test('SESSION_KEYS accepts padded base64 keys, newest first, with spaces around commas', async (t) => {
  const [a, b] = [good(), good()]
  const config = loadConfig({ SESSION_KEYS: ` ${a} , ${b} ` })
  t.ok(config.secureSession !== false)
  if (config.secureSession === false) return
  t.same(config.secureSession.keys.map((k) => k.toString('base64')), [a, b])
})

t.test('lifetimes and cookie settings are validated', async (t) => {
  t.match(messageOf(() => loadConfig({ SESSION_MAX_AGE: '600', SESSION_IDLE_TIMEOUT: '900' })), /SESSION_IDLE_TIMEOUT: idleTimeout \(900\) is longer than maxAge \(600\)/)
  t.match(messageOf(() => loadConfig({ SESSION_MAX_AGE: 'a day' })), /SESSION_MAX_AGE: "a day" is not a whole number of seconds/)
  t.match(messageOf(() => loadConfig({ SESSION_COOKIE_NAME: 'bad name;' })), /SESSION_COOKIE_NAME: must be a cookie token/)
})

t.test('SameSite=None needs Secure, which plain HTTP cannot carry', async (t) => {
  const result = secureSessionSchema.safeParse({ sameSite: 'none', secure: false })
  t.notOk(result.success)
  t.match(result.error?.issues[0]?.message, /SameSite=None requires a Secure cookie/)
})

t.test('effectiveCookieName: __Host- without Domain, __Secure- with one, no prefix without Secure', async (t) => {
  t.equal(effectiveCookieName({ cookieName: '__Host-session', secure: true, domain: undefined }), '__Host-session')
  t.equal(effectiveCookieName({ cookieName: '__Host-session', secure: true, domain: 'example.com' }), '__Secure-session')
  t.equal(effectiveCookieName({ cookieName: '__Host-session', secure: false, domain: undefined }), 'session')
  t.equal(effectiveCookieName({ cookieName: '__Secure-sid', secure: false, domain: undefined }), 'sid')
  t.equal(effectiveCookieName({ cookieName: 'sid', secure: true, domain: undefined }), 'sid')
})

t.test('the plugin registered alone validates its options at register time', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(secureSession, { keys: ['short'] })
  await t.rejects(async () => { await app.ready() }, /keys.*a key is not valid base64|a key must be exactly 32 bytes/)
})
