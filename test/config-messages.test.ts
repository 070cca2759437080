/**
 * Configuration messages that say what is wrong and what would be right, for the mistakes people
 * make: `HTTP_PORT=none`, `PORT=-1`, `TLS_MODE=FILES`, an empty environment under `doctor`. The
 * environment is hostile input: every parser is fuzzed, and a value is never echoed raw.
 */
import fc from 'fast-check'
import t from 'tap'
import { ConfigError, loadConfig, environmentVariables } from '../index.ts'
import { doctor } from '../audit/doctor.ts'
import { distinctIssues } from '../schemas/env.ts'
import { configErrorOf } from './helpers/config.ts'
import { growth } from './helpers/linear.ts'

const messageOf = (env: Record<string, string>): string => configErrorOf(() => loadConfig(env)).message

t.test('ports: what a port is, and that HTTP_PORT can be off', async (t) => {
  t.match(messageOf({ HTTP_PORT: 'none' }), /HTTP_PORT: "none" is not a port number; use a whole number from 0 to 65535, or off for no redirect listener/)
  t.match(messageOf({ PORT: '-1' }), /PORT: "-1" is not a port number; use a whole number from 0 to 65535/)
  t.notMatch(messageOf({ PORT: '-1' }), /whole number;/, 'not "not a whole number": -1 is one')
  t.match(messageOf({ PORT: '1.5' }), /PORT: "1\.5" is not a port number/)
  t.match(messageOf({ PORT: '70000' }), /PORT: must be at most 65535/)
  t.match(messageOf({ HTTPS_PUBLIC_PORT: 'https' }), /HTTPS_PUBLIC_PORT: "https" is not a port number/)
  t.equal(loadConfig({ HTTP_PORT: 'Off' }).httpsRedirect, false)
})

t.test('keywords are compared without case, like HTTP_PORT=off', async (t) => {
  const files = loadConfig({ TLS_MODE: 'FILES', TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem' })
  t.equal(files.tls !== false && files.tls.mode, 'files', 'TLS_MODE=FILES is files')
  const modern = loadConfig({ TLS_PROFILE: 'Modern' })
  t.equal(modern.tls !== false && modern.tls.profile, 'modern')
  t.match(messageOf({ SESSION_STORE: 'Redis' }), /REDIS_URL: is required with SESSION_STORE=redis/, 'SESSION_STORE=Redis is redis (and needs REDIS_URL)')
  const staging = loadConfig({ TLS_MODE: 'acme', ACME_DIRECTORY: 'LetsEncrypt-Staging', ACME_DOMAINS: 'example.com', ACME_EMAIL: 'ops@example.com', ACME_AGREE_TOS: 'true' })
  t.equal(staging.tls !== false && staging.tls.acme.directory, 'https://acme-staging-v02.api.letsencrypt.org/directory')
  const url = 'https://Acme.Example.com/Directory'
  const custom = loadConfig({ TLS_MODE: 'acme', ACME_DIRECTORY: url, ACME_DOMAINS: 'example.com', ACME_EMAIL: 'ops@example.com', ACME_AGREE_TOS: 'true' })
  t.equal(custom.tls !== false && custom.tls.acme.directory, url, 'a URL is kept as written')
  t.match(messageOf({ TLS_MODE: 'bogus' }), /TLS_MODE: must be one of self-signed, files, acme, proxy, off/)
})

t.test('seconds: negative and decimal values are named as such', async (t) => {
  t.match(messageOf({ HSTS_MAX_AGE: '-5' }), /HSTS_MAX_AGE: "-5" is negative; write 0 or a positive whole number of seconds/)
  t.match(messageOf({ SESSION_MAX_AGE: '1e3' }), /SESSION_MAX_AGE: "1e3" is not a whole number of seconds; write digits only, e\.g\. 86400/)
})

t.test('production without TLS_MODE: the mode is asked for, not the files of a mode nobody chose', async (t) => {
  const error = configErrorOf(() => loadConfig({ NODE_ENV: 'production' }))
  t.match(error.message, /TLS_MODE: is required in production/)
  t.notMatch(error.message, /TLS_CERT_FILE|TLS_KEY_FILE/)
  const report = await doctor({})
  const failed = report.checks.filter((check) => check.status === 'fail').map((check) => check.id)
  t.ok(failed.includes('SH-TLS-001'), 'doctor on an empty environment: TLS_MODE is set fails')
  t.notOk(failed.includes('SH-TLS-004'), 'and says nothing about TLS_CERT_FILE')
  t.notMatch(JSON.stringify(report.checks.filter((check) => check.status === 'fail')), /TLS_CERT_FILE/)
})

t.test('one report per problem: a mistyped TLS_MODE, a REDIS_URL two parts read, a required ALLOWED_HOSTS', async (t) => {
  const base = { NODE_ENV: 'production', TRUST_PROXY: '10.0.0.1', SESSION_KEYS: 'q8m3b4Zg7u1XyJQm7Gx2C6cNfB8H0pVd3YwKs9tLr5E=', ALLOWED_HOSTS: 'example.com' }
  const issuesOf = (env: Record<string, string | undefined>, variable: string): string[] =>
    configErrorOf(() => loadConfig(env)).issues.filter((issue) => issue.variable === variable).map((issue) => issue.message)
  t.match(issuesOf({ ...base, TLS_MODE: 'proxi' }, 'TLS_MODE'), [/^must be one of self-signed, files, acme, proxy, off/], 'a mistyped TLS_MODE is not "required" too')
  t.equal(issuesOf({ ...base, TLS_MODE: 'proxi' }, 'TLS_MODE').length, 1)
  t.match(issuesOf({ ...base }, 'TLS_MODE'), [/^is required in production/], 'an unset one is')
  const redis = issuesOf({ ...base, TLS_MODE: 'proxy', SESSION_STORE: 'redis', REDIS_URL: 'localhost:6379' }, 'REDIS_URL')
  t.equal(redis.length, 1, `REDIS_URL once, though the session store and the certificate storage both read it: ${redis.join(' | ')}`)
  t.match(redis[0], /must be a redis:\/\/ or rediss:\/\/ URL/)
  const hosts = issuesOf({ ...base, TLS_MODE: 'proxy', ALLOWED_HOSTS: undefined }, 'ALLOWED_HOSTS')
  t.equal(hosts.length, 1, `ALLOWED_HOSTS once: ${hosts.join(' | ')}`)
  t.match(hosts[0], /^is required in production/, 'as required, which says all the rest')
  const empty = { path: 'httpsRedirect.allowedHosts', variable: 'ALLOWED_HOSTS', message: 'is empty while the HTTPS redirect is on' }
  t.same(distinctIssues([empty]), [empty], 'without a required message (host authorization off), the redirect\'s is kept')
  t.same(distinctIssues([
    { path: 'secureSession.keys.0', variable: 'SESSION_KEYS', message: 'key 1 of 2 is too short' },
    { path: 'secureSession.keys.1', variable: 'SESSION_KEYS', message: 'key 2 of 2 has too few distinct byte values' }
  ]).length, 2, 'two different problems of one variable are both reported')
})

t.test('HOST: an IP address or a host name, checked before listen() would fail on it', async (t) => {
  for (const host of ['0.0.0.0', '127.0.0.1', '::', '::1', 'fe80::1', 'localhost', 'app.internal', 'my-host']) {
    t.equal(loadConfig({ HOST: host }).host, host, `${host} is an address to listen on`)
  }
  for (const host of ['not a host!', '127.0.0.1:3000', '[::1]', 'http://0.0.0.0', 'a..b', '-x']) {
    t.match(messageOf({ HOST: host }), /HOST: ".*" must be an address to listen on: an IP address \(0\.0\.0\.0 for every interface/, `${host} is not`)
  }
})

t.test('a hostile value is shown escaped and cut, never raw', async (t) => {
  const message = messageOf({ PORT: `x\u001b[31m\nfake: line${'a'.repeat(500)}` })
  t.notOk(message.includes('\u001b'), 'no terminal escape')
  t.equal(message.split('\n').length, 2, 'no forged line')
  t.ok(message.length < 300, 'cut short')
})

t.test('fuzz: every variable parses any string into a value or one ConfigError naming it, in linear time', async (t) => {
  const names = Object.keys(environmentVariables)
  fc.assert(fc.property(fc.constantFrom(...names), fc.string({ maxLength: 200, unit: 'binary' }), (name, value) => {
    try {
      loadConfig({ [name]: value })
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      if (!error.issues.every((issue) => issue.message.length > 0)) throw new Error('an empty message')
    }
  }), { numRuns: 3000 })

  // Time fitted over four lengths, best batches interleaved (test/helpers/linear.ts), so that other
  // work on the machine cannot fail it: about n^1 (a backtracking regex would give n^2). Every
  // length is over 128 KB: V8 keeps strings that large, and their copies, in its large-object space,
  // a one-time step of ten times between smaller and larger ones, not a growth.
  const evil = (n: number): string => `-${'1'.repeat(n)}.${'1'.repeat(n)}e`
  const parseAll = (value: string): void => {
    for (const name of ['PORT', 'HTTP_PORT', 'HSTS_MAX_AGE', 'SESSION_MAX_AGE', 'TLS_MODE', 'ACME_DIRECTORY', 'TRUST_PROXY']) {
      try { loadConfig({ [name]: value }) } catch { /* measured, not checked */ }
    }
  }
  const grown = growth(evil, parseAll, [75_000, 110_000, 160_000, 240_000], { rounds: 11, repeat: 1 })
  t.ok(grown.exponent < 1.5, `time grows about linearly with the value's length: ${grown.text}`)
})
