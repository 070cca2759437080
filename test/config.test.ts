import t from 'tap'
import { configSchema, loadConfig, resolveConfig } from '../index.ts'
import { configErrorOf } from './helpers/config.ts'

// Fixed random keys (production refuses sequences and other patterns).
const KEY_A = Buffer.from('1c0862b82c36a9cf4fc5766574e996a4ec75aa3d382d3ca0ebf2d834800188d5', 'hex').toString('base64')
const KEY_B = Buffer.from('c476f0562be14ad4888fdfffd8deb66fccf62fc8fe79bc46fc38f39215e9fe6d', 'hex').toString('base64')

const issuesOf = configErrorOf

t.test('zero configuration is a working development setup', async (t) => {
  const config = loadConfig({})
  t.equal(config.production, false)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.port, 8443)
  t.same(config.allowedHosts, ['localhost', '127.0.0.1', '::1'])
  t.ok(config.tls)
  if (config.tls === false || config.httpsRedirect === false || config.secureSession === false || config.hsts === false) throw new Error('sections missing')
  t.equal(config.tls.mode, 'self-signed')
  t.equal(config.tls.profile, 'intermediate')
  t.equal(config.tls.dir, '.secure-https')
  t.same(config.tls.hosts, [], 'the certificate need cover no name the user did not set (its own defaults cover localhost)')
  t.equal(config.httpsRedirect.mode, 'listener')
  t.equal(config.httpsRedirect.port, 8080)
  t.equal(config.httpsRedirect.httpsPort, 8443, 'redirects point at the HTTPS port')
  t.same(config.httpsRedirect.exempt, ['/healthz'])
  t.equal(config.secureSession.cookieName, '__Host-session')
  t.equal(config.secureSession.secure, true)
  t.equal(config.hsts.maxAge, 31536000)
  t.equal(config.hsts.localhost, false, 'HSTS stays off for localhost')
  t.equal(config.errorHandler, false, 'the redacting error handler is for production')
  t.ok(Object.isFrozen(config), 'the config is frozen')
  t.ok(Object.isFrozen(config.tls))
})

t.test('a good production environment', async (t) => {
  const config = loadConfig({
    NODE_ENV: 'production',
    TLS_MODE: 'files',
    TLS_CERT_FILE: '/etc/ssl/site/fullchain.pem',
    TLS_KEY_FILE: '/etc/ssl/site/privkey.pem',
    SESSION_KEYS: `${KEY_A}, ${KEY_B}`,
    ALLOWED_HOSTS: 'example.com,www.example.com',
    TRUST_PROXY: '10.0.0.1,loopback',
    HSTS_INCLUDE_SUBDOMAINS: 'true',
    HSTS_PRELOAD: 'true',
    HTTP2: 'true'
  })
  t.equal(config.production, true)
  t.equal(config.host, '0.0.0.0')
  t.equal(config.port, 443)
  if (config.tls === false || config.httpsRedirect === false || config.secureSession === false || config.proxyTrust === false || config.hsts === false) throw new Error('sections missing')
  t.equal(config.tls.http2, true)
  t.equal(config.httpsRedirect.port, 80)
  t.equal(config.httpsRedirect.httpsPort, 443)
  t.same(config.httpsRedirect.allowedHosts, ['example.com', 'www.example.com'])
  t.equal(config.secureSession.keys.length, 2)
  t.ok(Buffer.isBuffer(config.secureSession.keys[0]))
  t.same(config.proxyTrust.trust, ['10.0.0.1', 'loopback'])
  t.equal(config.hsts.preload, true)
  t.same(config.errorHandler, { message: 'Internal Server Error', exposeClientErrors: true }, 'production installs the redacting error handler')
})

t.test('TLS at a proxy: plain HTTP on 3000, in-app redirect, trust required', async (t) => {
  const config = loadConfig({ TLS_MODE: 'proxy', TRUST_PROXY: '127.0.0.1' })
  t.equal(config.port, 3000)
  if (config.httpsRedirect === false) throw new Error('redirect missing')
  t.equal(config.httpsRedirect.mode, 'hook')
  t.equal(config.httpsRedirect.httpsPort, 443)
  const error = issuesOf(() => loadConfig({ TLS_MODE: 'proxy' }))
  t.match(error.message, /TRUST_PROXY: is required with TLS_MODE=proxy/)
})

t.test('TLS off: no redirect, the session cookie loses Secure and its prefix', async (t) => {
  const config = loadConfig({ TLS_MODE: 'off' })
  t.equal(config.port, 3000)
  t.equal(config.httpsRedirect, false)
  if (config.secureSession === false) throw new Error('session missing')
  t.equal(config.secureSession.secure, false)
})

t.test('HTTP_PORT=off turns the redirect listener off', async (t) => {
  t.equal(loadConfig({ HTTP_PORT: 'off' }).httpsRedirect, false)
})

t.test('a bad environment reports every problem at once, by variable', async (t) => {
  const error = issuesOf(() => loadConfig({
    PORT: 'eighty',
    HTTP_PORT: '70000',
    TLS_MODE: 'selfsigned',
    TLS_PROFILE: 'old',
    HSTS_MAX_AGE: '-5',
    HSTS_PRELOAD: 'yes please',
    SESSION_KEYS: 'not base64!',
    TRUST_PROXY: '2',
    ALLOWED_HOSTS: 'https://example.com/'
  }))
  t.equal(error.code, 'ERR_SECURE_HTTPS_CONFIG')
  const variables = error.issues.map((issue) => issue.variable)
  for (const variable of ['PORT', 'HTTP_PORT', 'TLS_MODE', 'TLS_PROFILE', 'HSTS_MAX_AGE', 'HSTS_PRELOAD', 'SESSION_KEYS', 'TRUST_PROXY', 'ALLOWED_HOSTS']) {
    t.ok(variables.includes(variable), `${variable} is reported`)
  }
  t.match(error.message, /PORT: "eighty" is not a port number; use a whole number from 0 to 65535/)
  t.match(error.message, /HTTP_PORT: must be at most 65535/)
  t.match(error.message, /TLS_MODE: must be one of self-signed, files, acme, proxy, off/)
  t.match(error.message, /HSTS_PRELOAD: "yes please" is not a boolean; write true or false/)
  t.match(error.message, /SESSION_KEYS: a key is not valid base64 \(standard or URL-safe\); make one with: openssl rand -base64 32/)
  t.match(error.message, /TRUST_PROXY: .*hop counts are refused/)
  t.match(error.message, /ALLOWED_HOSTS: "https:\/\/example.com\/" is not a host name/)
  for (const line of error.message.split('\n').slice(1)) {
    t.match(line, /^ {2}- [A-Z_0-9]+: /, `each line starts with the variable: ${line}`)
  }
})

t.test('booleans are strict: "false" is false, garbage is an error', async (t) => {
  const off = loadConfig({ HSTS_INCLUDE_SUBDOMAINS: 'false' })
  t.equal(off.hsts !== false && off.hsts.includeSubDomains, false)
  const on = loadConfig({ HSTS_INCLUDE_SUBDOMAINS: 'TRUE' })
  t.equal(on.hsts !== false && on.hsts.includeSubDomains, true)
  t.throws(() => loadConfig({ HTTP2: 'maybe' }), /HTTP2: "maybe" is not a boolean/)
})

t.test('production refuses what is unsafe, each with its own message', async (t) => {
  const selfSigned = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'self-signed', SESSION_KEYS: KEY_A, ALLOWED_HOSTS: 'example.com' }))
  t.match(selfSigned.message, /TLS_MODE: self-signed certificates are refused in production/)
  t.equal(selfSigned.issues.length, 1)

  const off = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'off', SESSION_KEYS: KEY_A }))
  t.match(off.message, /TLS_MODE: plain HTTP is refused in production/)

  const noMode = issuesOf(() => loadConfig({ NODE_ENV: 'production', SESSION_KEYS: KEY_A, ALLOWED_HOSTS: 'example.com' }))
  t.match(noMode.message, /TLS_MODE: is required in production/)

  const noKeys = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.2', ALLOWED_HOSTS: 'example.com' }))
  t.match(noKeys.message, /SESSION_KEYS: is required in production/)

  const trustAll = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: 'true', SESSION_KEYS: KEY_A, ALLOWED_HOSTS: 'example.com' }))
  t.match(trustAll.message, /TRUST_PROXY: trusting every peer is refused in production/)

  const hops = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '1', SESSION_KEYS: KEY_A, ALLOWED_HOSTS: 'example.com' }))
  t.match(hops.message, /TRUST_PROXY: .*hop counts are refused/)

  const noHosts = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.2', SESSION_KEYS: KEY_A }))
  t.match(noHosts.message, /ALLOWED_HOSTS: is required in production/, 'one message for ALLOWED_HOSTS (test/config-messages.test.ts)')

  const weakKey = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.2', ALLOWED_HOSTS: 'example.com', SESSION_KEYS: Buffer.alloc(32, 7).toString('base64') }))
  t.match(weakKey.message, /SESSION_KEYS: key 1 of 1 is a sequence/)

  const shortKey = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.2', ALLOWED_HOSTS: 'example.com', SESSION_KEYS: Buffer.alloc(16, 7).toString('base64') }))
  t.match(shortKey.message, /SESSION_KEYS: a key must be exactly 32 bytes \(got 16\)/)

  const repeated = issuesOf(() => loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.2', ALLOWED_HOSTS: 'example.com', SESSION_KEYS: `${KEY_A},${KEY_A}` }))
  t.match(repeated.message, /SESSION_KEYS: key 2 repeats an earlier key/)
})

t.test('HSTS preload rules, each its own message', async (t) => {
  const error = issuesOf(() => loadConfig({ HSTS_PRELOAD: 'true', HSTS_MAX_AGE: '300', HTTP_PORT: 'off' }))
  const preload = error.issues.filter((issue) => issue.variable === 'HSTS_PRELOAD').map((issue) => issue.message)
  t.equal(preload.length, 3)
  t.match(preload[0], /requires HSTS_MAX_AGE >= 31536000 \(got 300\)/)
  t.match(preload[1], /requires HSTS_INCLUDE_SUBDOMAINS=true/)
  t.match(preload[2], /requires an active HTTP to HTTPS redirect/)
})

t.test('files and acme modes need their settings', async (t) => {
  const files = issuesOf(() => loadConfig({ TLS_MODE: 'files' }))
  t.match(files.message, /TLS_CERT_FILE: is required with TLS_MODE=files/)
  t.match(files.message, /TLS_KEY_FILE: is required with TLS_MODE=files/)
  const acme = issuesOf(() => loadConfig({ TLS_MODE: 'acme' }))
  t.match(acme.message, /ACME_DOMAINS: is required with TLS_MODE=acme/)
  t.match(acme.message, /ACME_EMAIL: is required with TLS_MODE=acme/)
  t.match(acme.message, /ACME_AGREE_TOS: must be true with TLS_MODE=acme/)
  const dir = issuesOf(() => loadConfig({ TLS_MODE: 'acme', ACME_DOMAINS: 'example.com', ACME_EMAIL: 'ops@example.com', ACME_AGREE_TOS: 'true', ACME_DIRECTORY: 'ftp://x' }))
  t.match(dir.message, /ACME_DIRECTORY: "ftp:\/\/x" is not an ACME directory/)
  const ok = loadConfig({ TLS_MODE: 'acme', ACME_DOMAINS: 'example.com', ACME_EMAIL: 'ops@example.com', ACME_AGREE_TOS: 'true', ACME_DIRECTORY: 'letsencrypt-staging' })
  t.equal(ok.tls !== false && ok.tls.acme.directory, 'https://acme-staging-v02.api.letsencrypt.org/directory')
})

t.test('code options: unknown keys and wrong types name the option path', async (t) => {
  const error = issuesOf(() => resolveConfig({ hsts: { maxAge: 'long' }, secureSession: { cookiename: 'x' }, typo: 1 } as never))
  t.match(error.message, /hsts\.maxAge: maxAge must be a number of seconds/)
  t.match(error.message, /secureSession: unknown option "cookiename"/)
  t.match(error.message, /\(root\): unknown option "typo"/)
})

t.test('every section can be false', async (t) => {
  const config = resolveConfig({ tls: false, httpsRedirect: false, proxyTrust: false, hsts: false, securityHeaders: false, secureSession: false, errorHandler: false })
  for (const key of ['tls', 'httpsRedirect', 'proxyTrust', 'hsts', 'securityHeaders', 'secureSession', 'errorHandler'] as const) {
    t.equal(config[key], false, `${key} is off`)
  }
})

t.test('a resolved config parses to the same config', async (t) => {
  const first = loadConfig({ NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: 'loopback', SESSION_KEYS: KEY_A, ALLOWED_HOSTS: 'example.com' })
  const second = configSchema.parse(first)
  t.same(second, first)
})

t.test('a domain on the session cookie switches __Host- to __Secure-', async (t) => {
  const { effectiveCookieName } = await import('../schemas/secure-session.ts')
  t.equal(effectiveCookieName({ cookieName: '__Host-session', secure: true }), '__Host-session')
  t.equal(effectiveCookieName({ cookieName: '__Host-session', secure: true, domain: 'example.com' }), '__Secure-session')
  t.equal(effectiveCookieName({ cookieName: '__Host-session', secure: false }), 'session')
})

t.test('production refuses TLS ticket and storage keys that are not random, as it does session keys', async (t) => {
  const { randomBytes } = await import('node:crypto')
  const base = { NODE_ENV: 'production', TLS_MODE: 'acme', ACME_DOMAINS: 'example.com', ACME_EMAIL: 'ops@example.com', ACME_AGREE_TOS: 'true', ALLOWED_HOSTS: 'example.com', SESSION_KEYS: KEY_A, TLS_STORAGE: 'redis', REDIS_URL: 'redis://127.0.0.1:6379' }
  const sequence = (length: number): string => Buffer.from(Array.from({ length }, (_, i) => (i * 3) & 0xff)).toString('base64')
  const text = Buffer.from('correct horse battery staple 123').toString('base64')
  const weak = issuesOf(() => loadConfig({ ...base, TLS_TICKET_KEYS: sequence(48), TLS_STORAGE_KEYS: `${randomBytes(32).toString('base64')},${text}` }))
  t.same(weak.issues.map((issue) => issue.variable).sort(), ['TLS_STORAGE_KEYS', 'TLS_TICKET_KEYS'], 'both named, at once')
  t.match(weak.message, /TLS_TICKET_KEYS: key 1 of 1 is a sequence .*openssl rand -base64 48/)
  t.match(weak.message, /TLS_STORAGE_KEYS: key 2 of 2 decodes to printable text .*openssl rand -base64 32/)
  const config = loadConfig({ ...base, TLS_TICKET_KEYS: randomBytes(48).toString('base64'), TLS_STORAGE_KEYS: randomBytes(32).toString('base64') })
  t.equal(config.tls === false ? 0 : config.tls.storageKeys.length, 1, 'random keys pass')
  const development = loadConfig({ ...base, NODE_ENV: 'development', TLS_TICKET_KEYS: sequence(48), TLS_STORAGE_KEYS: text })
  t.ok(development.tls, 'development keeps accepting them (its own tests, fixtures)')
})
