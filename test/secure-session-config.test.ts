import fastifySecureSession from '@fastify/secure-session'
import fc from 'fast-check'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ConfigError, doctor, loadConfig, resolveConfig, secureSession } from '../index.ts'
import { cookieDomainProblem, decodeKeyText, effectiveCookieName, secureSessionSchema, sessionKeyWeakness } from '../schemas/secure-session.ts'
import { configErrorOf } from './helpers/config.ts'
import { growth } from './helpers/linear.ts'

const good = (): string => randomBytes(32).toString('base64')
const MAKE = /make one with: openssl rand -base64 32 \(or npx fastify-secure-https keygen\)/

function messageOf (fn: () => unknown): string {
  return configErrorOf(fn).message
}

const URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * A 32-byte key in base64url whose last character carries a bit the bytes do not have: 43
 * characters hold 258 bits, so the last one's two low bits are unused, and Node's decoder ignores them.
 */
function nonCanonical (key: Buffer): string {
  const text = key.toString('base64url')
  return text.slice(0, -1) + (URL_ALPHABET[URL_ALPHABET.indexOf(text.at(-1) as string) ^ 1] as string)
}

t.test('SESSION_KEYS: each bad key is refused with a message naming the variable and how to make a key, never echoing the key', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['not base64', 'this is not base64!', /SESSION_KEYS: a key is not valid base64/],
    ['both alphabets in one key', `+-${randomBytes(32).toString('base64url').slice(2)}`, /SESSION_KEYS: a key is not valid base64 \(standard or URL-safe\)/],
    ['misplaced padding', `${randomBytes(32).toString('base64url').slice(0, 41)}=A`, /SESSION_KEYS: a key is not valid base64/],
    ['wrong padding', `${randomBytes(32).toString('base64url')}==`, /SESSION_KEYS: a key is not valid base64/],
    ['stray low bits in the last character', nonCanonical(randomBytes(32)), /SESSION_KEYS: a key is not valid base64/],
    ['16 bytes', randomBytes(16).toString('base64'), /SESSION_KEYS: a key must be exactly 32 bytes \(got 16\)/],
    ['64 bytes', randomBytes(64).toString('base64'), /SESSION_KEYS: a key must be exactly 32 bytes \(got 64\)/],
    ['all one byte', Buffer.alloc(32, 0x41).toString('base64'), /SESSION_KEYS: key 2 of 2 has too few distinct byte values to be random/],
    ['a counting pattern of 8 values', Buffer.from(Array.from({ length: 32 }, (_, i) => i % 8)).toString('base64'), /SESSION_KEYS: key 2 of 2 has too few distinct byte values/]
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

t.test('SESSION_KEYS also takes the spellings @fastify/secure-session read: URL-safe base64, padded or not, and standard base64 unpadded', async (t) => {
  const key = randomBytes(32)
  const spellings = [key.toString('base64'), key.toString('base64').replace(/=+$/, ''), key.toString('base64url'), `${key.toString('base64url')}=`]
  for (const spelling of spellings) {
    const config = loadConfig({ SESSION_KEYS: `${good()},${spelling}` })
    t.ok(config.secureSession !== false && config.secureSession.keys[1]?.equals(key), `${spelling.slice(-3)}: the same 32 bytes`)
  }
  const stray = nonCanonical(key)
  t.not(stray, key.toString('base64url'), 'the refused spelling differs from the canonical one')
  t.ok(Buffer.from(stray, 'base64url').equals(key), 'yet Node\'s decoder reads it as the same 32 bytes: only its stray bits get it refused')
  t.match(messageOf(() => loadConfig({ SESSION_KEYS: stray })), /SESSION_KEYS: a key is not valid base64/)
})

t.test('decodeKeyText: null, or bytes whose canonical spelling is the text (fast-check), in time linear in its length', async (t) => {
  const spelled = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.constantFrom('base64', 'base64url'), fc.boolean())
    .map(([bytes, alphabet, padded]) => {
      const text = Buffer.from(bytes).toString(alphabet as BufferEncoding).replace(/=+$/, '')
      return { bytes: Buffer.from(bytes), text: padded ? text.padEnd(Math.ceil(text.length / 4) * 4, '=') : text }
    })
  fc.assert(fc.property(spelled, ({ bytes, text }) => decodeKeyText(text)?.equals(bytes) === true), { numRuns: 2000 })
  const noisy = fc.string({ unit: fc.constantFrom(...'AQgw+/-_=Zz09 \n.'.split('')), maxLength: 48 })
  fc.assert(fc.property(noisy, (text) => {
    const bytes = decodeKeyText(text)
    if (bytes === null) return true
    const alphabet = /[-_]/.test(text) ? 'base64url' : 'base64'
    return bytes.toString(alphabet).replace(/=+$/, '') === text.replace(/=+$/, '')
  }), { numRuns: 5000 })
  // The regular expression backtracks once per alternative at most: a long run of one alphabet
  // ending in a character of the other is the worst case.
  // Lengths past V8's one-time step into its large-object space (test/helpers/linear.ts).
  const grown = growth((n) => `${'A'.repeat(n)}+-`, decodeKeyText, [262144, 524288, 1048576, 2097152], { rounds: 9, repeat: 3 })
  t.ok(grown.exponent < 1.5, `time grows as ${grown.text} (linear is 1)`)
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
  // Browsers read the prefixes in any case (RFC 6265bis): every spelling keeps its prefix only with
  // the attributes it requires; a cookie a browser would drop is never written.
  for (const spelling of ['__Host-', '__host-', '__HOST-', '__hOsT-', '__Secure-', '__secure-', '__SECURE-']) {
    for (const secure of [true, false]) {
      for (const domain of [undefined, 'example.com']) {
        const name = effectiveCookieName({ cookieName: `${spelling}session`, secure, domain })
        const host = spelling.toLowerCase() === '__host-'
        // Kept as written where the attributes fit the prefix (existing cookies stay valid).
        const expected = !secure ? 'session' : host && domain !== undefined ? '__Secure-session' : `${spelling}session`
        t.equal(name, expected, `${spelling}session, secure ${String(secure)}, domain ${String(domain)}`)
      }
    }
  }
  for (const cookieName of ['__Host-', '__host-', '__Secure-']) {
    t.match(messageOf(() => loadConfig({ SESSION_COOKIE_NAME: cookieName })), /SESSION_COOKIE_NAME: is only a prefix/, `${cookieName} alone is refused`)
  }
})

t.test('switching over with a URL-safe key string: the cookies @fastify/secure-session wrote with it still open', async (t) => {
  const spelled = randomBytes(32).toString('base64url')
  const before = Fastify()
  t.teardown(() => before.close())
  await before.register(fastifySecureSession, { key: spelled, cookieName: 'session', cookie: { path: '/' } })
  before.get('/login', async (request) => {
    request.session.set('user', 'alice')
    return 'ok'
  })
  const login = await before.inject('/login')
  const cookie = login.cookies.find((c) => c.name === 'session')
  t.ok(cookie !== undefined, '@fastify/secure-session wrote its cookie with the string key')

  for (const options of [{ keys: [spelled] }, configOf({ SESSION_KEYS: spelled })]) {
    const after = Fastify()
    t.teardown(() => after.close())
    await after.register(secureSession, { ...options, cookieName: 'session', secure: false })
    after.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
    const me = await after.inject({ url: '/me', cookies: { session: cookie?.value ?? '' } })
    t.same(me.json(), { user: 'alice' }, 'the same session, no one logged out')
  }
})

function configOf (env: Record<string, string>): { keys: Buffer[] } {
  const config = loadConfig(env)
  if (config.secureSession === false) throw new Error('sessions are off')
  return { keys: config.secureSession.keys }
}

t.test('the plugin registered alone validates its options at register time', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(secureSession, { keys: ['short'] })
  await t.rejects(async () => { await app.ready() }, /keys.*a key is not valid base64|a key must be exactly 32 bytes/)
})

t.test('@fastify/secure-session\'s options the suite does not take are refused with the way forward, by the plugin and the aggregate', async (t) => {
  const refusal = async (options: unknown): Promise<string> => {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(secureSession, options as Parameters<typeof secureSession>[1])
    try {
      await app.ready()
    } catch (error) {
      t.ok(error instanceof ConfigError, 'a ConfigError')
      return (error as Error).message
    }
    return 'accepted'
  }
  t.match(await refusal([{ sessionName: 'a', key: good() }]), /one session per app, request\.session \(no array of options\); for a second encrypted cookie, register @fastify\/secure-session itself inside a child plugin/)
  t.match(await refusal({ keys: [good()], sessionName: 'prefs' }), /sessionName: is not an option: the suite's session is request\.session \(no sessionName\).*docs\/compat\.md, "One session"/)
  t.match(await refusal({ secret: 'a passphrase', salt: 'mq9hDxBVDbspDR6nLfFT1g==' }), /secret: .*not a secret and salt.*\n.*salt: /)
  t.match(await refusal({ keys: [good()], sessionName: 'session' }), /sessionName: is not an option.*remove it/, 'not even \'session\': the option does not exist')
  const viaAggregate = configErrorOf(() => resolveConfig({ secureSession: { keys: [good()], sessionName: 'prefs' } as never }))
  t.same(viaAggregate.issues.map((issue) => issue.path), ['secureSession.sessionName'], 'the aggregate names the option')
})

t.test('a second encrypted cookie: @fastify/secure-session registered by the app inside a child plugin, beside the suite\'s session', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(secureSession, { keys: [good()], secure: false })
  await app.register(async (child) => {
    await child.register(fastifySecureSession, { sessionName: 'prefs', cookieName: 'prefs', key: randomBytes(32), cookie: { path: '/' } })
    child.post('/prefs', async (request) => {
      (request as unknown as { prefs: { set (key: string, value: unknown): void } }).prefs.set('theme', 'dark')
      request.session.set('user', 'alice')
      return { ok: true }
    })
    child.get('/prefs', async (request) => ({
      theme: (request as unknown as { prefs: { get (key: string): unknown } }).prefs.get('theme') ?? null,
      user: request.session.get('user') ?? null
    }))
  })
  const set = await app.inject({ method: 'POST', url: '/prefs' })
  const cookies = Object.fromEntries(set.cookies.map((cookie) => [cookie.name, cookie.value]))
  t.same(Object.keys(cookies).sort(), ['prefs', 'session'], 'two cookies: the app\'s own and the suite\'s session')
  const read = await app.inject({ url: '/prefs', cookies })
  t.same(read.json(), { theme: 'dark', user: 'alice' }, 'each reads back')
})

const PRODUCTION = { NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '127.0.0.1', ALLOWED_HOSTS: 'example.com' }

/** Weak keys that production refuses, each with what the message must say. */
const WEAK: Array<[string, Buffer, RegExp]> = [
  ['a phrase', Buffer.from('my-super-secret-session-key-2024'), /published example key|printable text/],
  ['hex digits as text', Buffer.from('0123456789abcdef0123456789abcdef'), /published example key|printable text/],
  ['bytes 0..31', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), /published example key|sequence/],
  ['another phrase', Buffer.from('correct horse battery staple!!!!'), /decodes to printable text/],
  ['a descending sequence', Buffer.from(Array.from({ length: 32 }, (_, i) => 250 - 7 * i & 255)), /is a sequence/],
  ['a 16-byte pattern twice', Buffer.concat([randomBytes(16)].flatMap((b) => [b, b])), /repeats a pattern of 16 bytes/],
  ['a 3-byte pattern', Buffer.from(Array.from({ length: 32 }, (_, i) => [0x91, 0x07, 0xe4][i % 3] as number)), /repeats a pattern of 3 bytes/],
  ['@fastify/secure-session\'s example key file', Buffer.from('9bb9bca32df0b21c58146aad9cab0272d9e0f716e3118bfff37703ae330be08c', 'hex'), /published example key/],
  ['the key in @fastify/secure-session\'s README', Buffer.from('4fe91796c30bd989d95b62dc46c7c3ba0b6aa2df2187400586a4121c54c53b85', 'hex'), /published example key/]
]

t.test('production refuses weak SESSION_KEYS by position, with the fix, never printing the key', async (t) => {
  for (const [label, key, reason] of WEAK) {
    const text = key.toString('base64')
    const message = messageOf(() => loadConfig({ ...PRODUCTION, SESSION_KEYS: `${good()},${text}` }))
    t.match(message, /SESSION_KEYS: key 2 of 2 /, `${label}: names the key by position`)
    t.match(message, reason, `${label}: says why`)
    t.match(message, MAKE, `${label}: says how to make one`)
    t.notOk(message.includes(text), `${label}: the key is not in the message`)
    t.notOk(message.includes(key.toString('hex')), `${label}: nor its hex`)
    t.not(sessionKeyWeakness(key), null, `${label}: sessionKeyWeakness finds it`)
  }
  t.doesNotThrow(() => loadConfig({ ...PRODUCTION, SESSION_KEYS: `${good()},${good()}` }), 'random keys are accepted')
  t.doesNotThrow(() => loadConfig({ SESSION_KEYS: Buffer.from('my-super-secret-session-key-2024').toString('base64') }), 'development accepts a phrase (only production refuses it)')
})

t.test('doctor uses the same test: a weak key fails SH-SESSION-002 (or SH-SESSION-003 when published), a random one passes', async (t) => {
  for (const [label, key] of WEAK) {
    const report = await doctor({ ...PRODUCTION, SESSION_KEYS: key.toString('base64') })
    const failed = report.checks.filter((check) => check.status === 'fail').map((check) => check.id)
    t.ok(failed.includes('SH-SESSION-002') || failed.includes('SH-SESSION-003'), `${label}: doctor fails it (${failed.join(', ')})`)
    const passed = report.checks.find((check) => check.id === 'SH-SESSION-002')
    t.not(passed?.status, 'pass', `${label}: SH-SESSION-002 does not call it random`)
  }
  const report = await doctor({ ...PRODUCTION, SESSION_KEYS: good() })
  t.equal(report.checks.find((check) => check.id === 'SH-SESSION-002')?.status, 'pass')
})

t.test('sessionKeyWeakness never refuses random keys (fast-check, 20,000 keys), and is linear in the key\'s length', async (t) => {
  // fast-check without its bias towards small and repeated values: uniform bytes, as a CSPRNG makes.
  fc.assert(fc.property(fc.noBias(fc.uint8Array({ minLength: 32, maxLength: 32 })), (bytes) => sessionKeyWeakness(bytes) === null), { numRuns: 20_000 })
  let refused = 0
  for (let i = 0; i < 20_000; i++) if (sessionKeyWeakness(randomBytes(32)) !== null) refused++
  t.equal(refused, 0, 'no key out of 20,000 from randomBytes is refused')
  // Arbitrary byte strings never make it throw, and the time grows with the length, not faster.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
    const result = sessionKeyWeakness(bytes)
    return result === null || typeof result === 'string'
  }), { numRuns: 2000 })
  // Fitted over four lengths, best batches interleaved (test/helpers/linear.ts): other work on the
  // machine cannot fail it.
  const grown = growth((n) => randomBytes(n), sessionKeyWeakness, [8192, 16384, 32768, 65536], { rounds: 15, repeat: 20 })
  t.ok(grown.exponent < 1.5, `the time grows with the length, not faster: ${grown.text}`)
})

t.test('SESSION_DOMAIN: a host name (RFC 6265), nothing that could add an attribute, no IP, no public suffix', async (t) => {
  const refused: Array<[string, RegExp]> = [
    ['example.com; SameSite=None', /letters, digits, dots and hyphens only/],
    ['example.com,evil.com', /letters, digits, dots and hyphens only/],
    ['example .com', /letters, digits, dots and hyphens only/],
    ['example.com\u0000', /letters, digits, dots and hyphens only/],
    ['exa\tmple.com', /letters, digits, dots and hyphens only/],
    ['ex_ample.com', /letters, digits, dots and hyphens only/],
    ['127.0.0.1', /not an IP address/],
    ['com', /public suffix/],
    ['.com', /public suffix/],
    ['co.uk', /public suffix/],
    ['github.io', /public suffix/],
    ['localhost', /public suffix/],
    ['-example.com', /not a valid host name/],
    ['example..com', /not a valid host name/],
    ['.', /must be a host name/]
  ]
  for (const [value, reason] of refused) {
    const message = messageOf(() => loadConfig({ SESSION_DOMAIN: value }))
    t.match(message, /SESSION_DOMAIN: /, `${JSON.stringify(value)}: names SESSION_DOMAIN`)
    t.match(message, reason, `${JSON.stringify(value)}: says why`)
  }
  for (const value of ['example.com', '.example.com', 'app.example.co.uk', 'myapp.github.io', 'Example.COM']) {
    const config = loadConfig({ SESSION_DOMAIN: value })
    t.equal(config.secureSession !== false && config.secureSession.domain, value.toLowerCase(), `${value} is accepted`)
  }
  // Whatever the text, the check answers (no exception) and never lets a separator through.
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (value) => {
    const problem = cookieDomainProblem(value.trim().toLowerCase())
    return problem !== null || /^[a-z0-9.-]+$/.test(value.trim().toLowerCase().replace(/^\./, ''))
  }), { numRuns: 5000 })
})
