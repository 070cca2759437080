'use strict'
/**
 * What the ported tests of @fastify/secure-session 8.4.0 (test/*.js, MIT, see LICENSE-fastify-secure-session)
 * need, mapped onto this suite and tap:
 * - `test(name, fn)` from node:test, run as a tap subtest whose `t.assert.*`, `t.after` and
 *   `t.plan` are tap's;
 * - `SecureSessionPlugin`: what a migrating user registers instead of @fastify/secure-session:
 *   the suite's `secureSession` with the same key(s), cookie name, expiry and cookie attributes
 *   (docs/compat.md lists what it does not take);
 * - `sodium`: the two members the tests use to make random keys (node:crypto);
 * - `FakeTimers`: the part of @sinonjs/fake-timers the tests use (`Date.now` moved by `jump`);
 * - `cookie.parseSetCookie`: a Set-Cookie parser with cookie@2's result shape.
 */
const tap = require('tap')
const fp = require('fastify-plugin')
const { randomFillSync } = require('node:crypto')
const { isDeepStrictEqual } = require('node:util')

function adapt (t) {
  t.assert = {
    ok: (value, message) => t.ok(value, message),
    strictEqual: (actual, expected, message) => t.equal(actual, expected, message),
    notEqual: (actual, expected, message) => t.not(actual, expected, message),
    notStrictEqual: (actual, expected, message) => t.not(actual, expected, message),
    deepStrictEqual: (actual, expected, message) => t.ok(isDeepStrictEqual(actual, expected), message ?? `deepStrictEqual ${JSON.stringify(actual)} ${JSON.stringify(expected)}`),
    ifError: (value, message) => t.error(value, message),
    throws: (fn, expected, message) => t.throws(fn, expected, message),
    rejects: (fn, expected, message) => t.rejects(typeof fn === 'function' ? fn : () => fn, expected ?? {}, message),
    doesNotReject: (fn, message) => t.resolves(typeof fn === 'function' ? fn : () => fn, message)
  }
  const subtest = t.test.bind(t)
  t.test = (name, fn) => subtest(name, (child) => fn(adapt(child)))
  return t
}

// The suite, loaded once before the first test (loading it can take longer than Fastify's
// plugin timeout on a busy machine).
const loading = import('../../../index.ts')

/** node:test's `test`, as a tap subtest. */
function test (name, fn) {
  return tap.test(name, async (t) => {
    await loading
    return fn(adapt(t))
  })
}

/** A test whose expectation changed; `why` names the section of docs/compat.md that says so. */
function difference (why) {
  return `difference (docs/compat.md): ${why}`
}

/**
 * For a file whose every test uses what the suite does not offer (`section` of docs/compat.md):
 * each test runs as written, against a recorder instead of tap, and passes when what stopped it is
 * the suite's documented refusal (`refusal`, matched against every error and failed assertion).
 */
function unsupported (section, refusal) {
  return function test (name, fn) {
    return tap.test(name, async (t) => {
      await loading
      const seen = []
      const teardowns = []
      const record = (value) => { if (value instanceof Error) seen.push(value.message); else if (value !== undefined) seen.push(String(value)) }
      const recorder = {
        plan () {},
        after (fn) { teardowns.push(fn) },
        assert: new Proxy({}, { get: () => (...args) => { args.forEach(record) } }),
        test: async (_name, child) => child(recorder)
      }
      try {
        await fn(recorder)
      } catch (error) {
        record(error)
      }
      for (const teardown of teardowns) await teardown()
      t.ok(seen.some((text) => refusal.test(text)), difference(`${section}: registration is refused with ${refusal}`))
    })
  }
}

const SESSION_DEFAULT_EXPIRY = 86401

/** @fastify/secure-session's options, as the suite's secureSession options (a migrating user's config). */
function toSuiteOptions (options) {
  // What secureSession does not take (several sessions, a secret and salt) goes to it as given: the
  // plugin itself refuses it, with the message the unsupported() tests look for.
  if (Array.isArray(options)) return options
  const refused = {}
  for (const name of ['sessionName', 'secret', 'salt']) if (options[name] !== undefined && !(name === 'sessionName' && options[name] === 'session')) refused[name] = options[name]
  if (Object.keys(refused).length > 0) return { keys: [randomFillSync(Buffer.alloc(32)).toString('base64')], ...refused }
  const cookie = options.cookie ?? options.cookieOptions ?? {}
  const keys = options.key === undefined ? [] : Array.isArray(options.key) ? options.key : [options.key]
  const expiry = options.expiry ?? SESSION_DEFAULT_EXPIRY
  const suite = {
    keys,
    cookieName: options.cookieName ?? 'session',
    // @fastify/secure-session's expiry counts from the last write: the suite's idle timeout; so does
    // a fixed cookie Max-Age, which every write sends again (the browser drops the cookie after it).
    idleTimeout: Math.min(expiry, typeof cookie.maxAge === 'number' ? cookie.maxAge : Infinity),
    maxAge: Math.max(expiry, SESSION_DEFAULT_EXPIRY),
    secure: cookie.secure !== false
  }
  if (cookie.sameSite !== undefined) suite.sameSite = cookie.sameSite === true ? 'strict' : String(cookie.sameSite).toLowerCase()
  if (cookie.domain !== undefined) suite.domain = cookie.domain
  return suite
}

/** Registered where a test registers @fastify/secure-session. */
const SecureSessionPlugin = fp(async function secureSessionAsAMigratingUserRegistersIt (fastify, options) {
  const { secureSession } = await loading
  await fastify.register(secureSession, toSuiteOptions(options))
}, { fastify: '5.x', name: 'compat/secure-session' })

const sodium = {
  crypto_secretbox_KEYBYTES: 32,
  crypto_secretbox_NONCEBYTES: 24,
  crypto_secretbox_MACBYTES: 16,
  crypto_pwhash_SALTBYTES: 16,
  randombytes_buf: (buffer) => { randomFillSync(buffer) }
}

const FakeTimers = {
  install ({ now } = {}) {
    const real = Date.now
    let offset = now === undefined ? 0 : now - real()
    Date.now = () => real() + offset
    return {
      jump (text) {
        const [h, m, s] = String(text).split(':').map(Number)
        offset += ((h * 60 + m) * 60 + s) * 1000
      },
      tick (ms) { offset += ms },
      reset () {},
      uninstall () { Date.now = real }
    }
  }
}

const cookie = {
  parseSetCookie (line) {
    const [pair, ...attributes] = String(line).split(';')
    const eq = pair.indexOf('=')
    const result = { name: pair.slice(0, eq).trim(), value: decodeURIComponent(pair.slice(eq + 1).trim()) }
    for (const attribute of attributes) {
      const [rawKey, ...rest] = attribute.trim().split('=')
      const key = rawKey.toLowerCase()
      const value = rest.join('=')
      if (key === 'path') result.path = value
      else if (key === 'domain') result.domain = value
      else if (key === 'expires') result.expires = new Date(value)
      else if (key === 'max-age') result.maxAge = Number(value)
      else if (key === 'httponly') result.httpOnly = true
      else if (key === 'secure') result.secure = true
      else if (key === 'samesite') result.sameSite = value.toLowerCase()
    }
    return result
  }
}

module.exports = { test, difference, unsupported, SecureSessionPlugin, toSuiteOptions, sodium, FakeTimers, cookie }
