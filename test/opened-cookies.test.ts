/**
 * The cache of opened session cookies (sessions/opened-cookies.ts): bounded, exact-value keys, fresh
 * objects on every hit, the key-rotation flag and @fastify/secure-session's expiry kept; and, end to
 * end on a real app over TLS, that the same cookie is decrypted once (libsodium's open counted).
 */
import fc from 'fast-check'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { cachedDecode, keyOf, OpenedCookies, type OpenedSession } from '../sessions/opened-cookies.ts'
import { sessionSealer } from '../sessions/seal.ts'
import { startApp } from './helpers/app.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'

/** A stand-in for @fastify/secure-session's session object. */
class FakeSession implements OpenedSession {
  changed = false
  readonly values: Record<string, unknown>
  constructor (values: Record<string, unknown>) {
    this.values = values
  }

  data (): Record<string, unknown> {
    const copy = { ...this.values }
    delete copy.__ts
    return copy
  }

  get (key: string): unknown { return this.values[key] }
}

const NOW = 1_800_000_000_000
const EXPIRY = 600

/** A decode that opens `valid` cookies (seconds of `__ts` in the value), counting its calls. */
function fakeDecode (valid: Map<string, { values: Record<string, unknown>, rotated?: boolean }>) {
  const calls: string[] = []
  const decode = (cookie: string): FakeSession | null => {
    calls.push(cookie)
    const found = valid.get(cookie)
    if (found === undefined) return null
    const session = new FakeSession(structuredClone(found.values))
    session.changed = found.rotated === true
    return session
  }
  return { decode, calls }
}

t.test('OpenedCookies: bounded, oldest first out, long values and capacity 0 kept out', async (t) => {
  const cache = new OpenedCookies(3, 10)
  const entry = (text: string, rotated = false) => ({ text, ts: 1, rotated })
  for (const value of ['a', 'b', 'c']) cache.set(value, entry(value))
  t.equal(cache.size, 3)
  cache.set('b', entry('b2', true))
  t.equal(cache.size, 3, 'an update takes no new room')
  t.match(cache.get('b'), entry('b2', true))
  cache.set('d', entry('d'))
  t.equal(cache.size, 3, 'never more than the capacity')
  t.equal(cache.get('a'), undefined, 'the oldest entry went first')
  t.ok(cache.get('d'))
  cache.set('x'.repeat(11), entry('long'))
  t.equal(cache.get('x'.repeat(11)), undefined, 'a value over maxChars is not kept')
  const none = new OpenedCookies(0, 10)
  none.set('a', entry('a'))
  none.remember({ value: 'a', nonce: 'a', text: '{}', ts: 1 })
  t.equal(none.size, 0, 'capacity 0 keeps nothing')

  const end = 'x'.repeat(16)
  const twins = new OpenedCookies(4, 100)
  twins.set(`genuine${end}`, entry('genuine'))
  t.equal(twins.get(`forged${end}`), undefined, 'a value with the same last characters is a miss, never the other cookie\'s session')
  twins.delete(`forged${end}`)
  t.equal(twins.get(`genuine${end}`)?.text, 'genuine', 'and deleting it leaves the other be')

  const remembered = new OpenedCookies(2, 100)
  const nonce = 'n'.repeat(32)
  remembered.remember({ value: `cipher;${nonce}`, nonce, text: '{"user":"alice","__ts":7}', ts: 7 })
  t.match(remembered.get(`cipher;${nonce}`), { text: '{"user":"alice","__ts":7}', ts: 7, rotated: false }, 'remember keeps the text sealed, sealed with the newest key')
  t.equal(remembered.get(`cipher;${nonce}`)?.rotated, false, 'a session this process sealed is sealed with the newest key')
  remembered.remember({ value: 'cipher;short', nonce: 'short', text: '{}', ts: 7 })
  t.equal(remembered.get('cipher;short')?.text, '{}', 'a nonce shorter than the key\'s 16 characters: keyed by the value itself')
})

t.test('keyOf: the last 16 characters as a small integer; values sharing a key are told apart', async (t) => {
  fc.assert(fc.property(fc.string(), fc.string(), fc.string({ minLength: 16, maxLength: 40 }), (a, b, tail) => {
    const key = keyOf(a + tail)
    return key === keyOf(b + tail) && Number.isInteger(key) && key >= 0 && key < 2 ** 30
  }), { numRuns: 500 })
  t.pass('500 random values: only the end counts, always a non-negative 30-bit integer')

  // The sealer's nonce is the value's end: remember keys a value by it without reading the value.
  const seal = sessionSealer(randomBytes(32))
  fc.assert(fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), (values) => {
    const session = new FakeSession({ ...values, __ts: 1 })
    const sealed = seal(session)
    const cache = new OpenedCookies(2, 4096)
    cache.remember(sealed)
    return sealed.value.endsWith(`;${sealed.nonce}`) && keyOf(sealed.value) === keyOf(sealed.nonce) &&
      cache.get(sealed.value)?.text === sealed.text
  }), { numRuns: 200 })
  t.pass('200 sealed cookies: keyed alike by their nonce and their value, and found by the value')

  // 'Aa' and 'BB' fold to the same integer (65 * 31 + 97 = 66 * 31 + 66).
  const prefix = 'p'.repeat(20)
  t.equal(keyOf(`${prefix}Aa`), keyOf(`${prefix}BB`), 'two ends with the same key')
  const shared = new OpenedCookies(4, 100)
  shared.set(`${prefix}Aa`, { text: 'first', ts: 1, rotated: false })
  t.equal(shared.get(`${prefix}BB`), undefined, 'the other value is a miss, never the first one\'s session')
  shared.delete(`${prefix}BB`)
  t.equal(shared.get(`${prefix}Aa`)?.text, 'first', 'deleting the other value leaves it be')
  shared.set(`${prefix}BB`, { text: 'second', ts: 1, rotated: false })
  t.equal(shared.size, 1, 'the other value replaces it in place')
  t.equal(shared.get(`${prefix}Aa`), undefined)
  t.equal(shared.get(`${prefix}BB`)?.text, 'second')
})

t.test('OpenedCookies, fuzzed against a plain Map: never over capacity, never a stale value', async (t) => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), key: fc.integer({ min: 0, max: 12 }), text: fc.string({ maxLength: 3 }) }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 12 }) })
  )
  fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 60 }), (capacity, ops) => {
    const cache = new OpenedCookies(capacity, 100)
    const latest = new Map<string, string>()
    for (const o of ops) {
      const key = `k${o.key}`
      if (o.kind === 'set') {
        cache.set(key, { text: o.text, ts: 1, rotated: false })
        latest.set(key, o.text)
      } else {
        cache.delete(key)
        latest.delete(key)
      }
      if (cache.size > capacity) return false
      for (const [k, text] of latest) {
        const found = cache.get(k)
        if (found !== undefined && found.text !== text) return false
      }
      for (let i = 0; i <= 12; i++) if (!latest.has(`k${i}`) && cache.get(`k${i}`) !== undefined) return false
    }
    // The last `capacity` keys set, none deleted after, are all there.
    const recent = [...new Set(ops.filter((o) => o.kind === 'set').map((o) => `k${o.key}`).reverse())].slice(0, 1)
    return recent.every((k) => !latest.has(k) || cache.get(k) !== undefined)
  }), { numRuns: 500 })
  t.pass('500 random sequences')
})

t.test('cachedDecode: one decode per cookie, a new object on each hit, rotation and expiry kept', async (t) => {
  const ts = NOW / 1000
  const valid = new Map([
    ['good', { values: { user: 'alice', __ts: ts } }],
    ['old-key', { values: { user: 'bob', __ts: ts }, rotated: true }]
  ])
  const { decode, calls } = fakeDecode(valid)
  let now = NOW
  const cache = new OpenedCookies(10, 4096)
  const open = cachedDecode(decode, (data) => new FakeSession(data), cache, EXPIRY, 'session', () => now)

  const first = open('good')
  t.equal(first?.get('user'), 'alice')
  t.same(calls, ['good'], 'a miss asks the wrapped decode')
  const second = open('good')
  t.same(calls, ['good'], 'a hit does not')
  t.equal(second?.get('user'), 'alice')
  t.not(second, first, 'a new session object')
  ;(second as FakeSession).values.user = 'mallory'
  t.equal(open('good')?.get('user'), 'alice', 'what one request changes is not seen by the next')

  t.equal(open('old-key')?.changed, true, 'opened with an older key: changed, to be re-sealed')
  t.equal(open('old-key')?.changed, true, 'and still so on a hit')
  t.equal(calls.filter((c) => c === 'old-key').length, 1)

  t.equal(open('forged'), null)
  t.equal(open('forged'), null)
  t.equal(calls.filter((c) => c === 'forged').length, 2, 'a cookie that did not open is never kept: each one takes the full path')

  const asked = calls.length
  open('good', undefined, 'other')
  t.equal(calls.length, asked + 1, 'another session name goes to the wrapped decode, every time')

  now = NOW + EXPIRY * 1000 - 1
  t.ok(open('good'), 'a millisecond before @fastify/secure-session\'s expiry: a hit')
  const before = calls.length
  now = NOW + EXPIRY * 1000
  valid.delete('good') // the wrapped decode refuses it now, as @fastify/secure-session does past its expiry
  t.equal(open('good'), null, 'at the expiry the entry is dropped and the full path refuses the cookie')
  t.equal(calls.length, before + 1)
  t.equal(cache.get('good'), undefined)
})

t.test('cachedDecode, fuzzed: whatever the cookie, only what the wrapped decode opened comes back', async (t) => {
  const ts = NOW / 1000
  const valid = new Map([['genuine', { values: { user: 'alice', __ts: ts } }]])
  const { decode } = fakeDecode(valid)
  const cache = new OpenedCookies(64, 4096)
  const open = cachedDecode(decode, (data) => new FakeSession(data), cache, EXPIRY, 'session', () => NOW)
  open('genuine')
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (cookie) => {
    const session = open(cookie)
    return cookie === 'genuine' ? session?.get('user') === 'alice' : session === null
  }), { numRuns: 2000 })
  t.equal(cache.size, 1, 'nothing but the genuine cookie was kept')
})

// End to end: libsodium's open, counted where @fastify/secure-session calls it (the binding's
// exports object, shared by every module that loads it).
const sodium = createRequire(import.meta.url)('sodium-native') as { crypto_secretbox_open_easy: (...args: unknown[]) => boolean }

t.test('over TLS: the same cookie is decrypted once; the cookie of a write is not decrypted at all', async (t) => {
  const realOpen = sodium.crypto_secretbox_open_easy
  let opens = 0
  sodium.crypto_secretbox_open_easy = (...args: unknown[]) => { opens++; return realOpen(...args) }
  t.teardown(() => { sodium.crypto_secretbox_open_easy = realOpen })

  const key = randomBytes(32).toString('base64')
  const s = await startApp({ secureSession: { keys: [key] } }, (app) => {
    app.get('/read', async (request) => ({ user: request.session.get('user') ?? null, note: request.session.get('note') ?? null }))
    app.post('/login', async (request) => { request.session.set('user', 'alice'); return { ok: true } })
    app.post('/note', async (request) => {
      request.session.set('note', 'hello')
      return { ok: true }
    })
  })
  t.teardown(() => s.close())
  const send = (path: string, cookie?: string, method = 'GET'): Promise<Response> =>
    request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `__Host-session=${cookie}` } })
  const cookieOf = (response: Response): string => parseSetCookie((response.headers['set-cookie'] ?? [])[0] as string).value

  const login = cookieOf(await send('/login', undefined, 'POST'))
  opens = 0
  t.same(JSON.parse((await send('/read', login)).body), { user: 'alice', note: null })
  t.equal(opens, 0, 'the cookie this process just sealed is opened without decrypting')
  const noted = cookieOf(await send('/note', login, 'POST'))
  for (let i = 0; i < 5; i++) t.same(JSON.parse((await send('/read', noted)).body), { user: 'alice', note: 'hello' })
  t.equal(opens, 0, 'nor the next one, read five times')

  // A cookie this process did not seal (another instance's, or one from before a restart).
  const other = await startApp({ secureSession: { keys: [key] } }, (app) => {
    app.post('/login', async (request) => { request.session.set('user', 'bob'); return { ok: true } })
  })
  t.teardown(() => other.close())
  const foreign = cookieOf(await request(`${other.url}/login`, { method: 'POST', ca: other.cert ?? undefined }))
  opens = 0
  for (let i = 0; i < 5; i++) t.equal(JSON.parse((await send('/read', foreign)).body).user, 'bob')
  t.equal(opens, 1, 'a cookie sealed elsewhere is decrypted on its first request only')

  const raw = decodeURIComponent(foreign)
  const altered = encodeURIComponent(raw.slice(0, 10) + (raw[10] === 'A' ? 'B' : 'A') + raw.slice(11))
  opens = 0
  for (let i = 0; i < 3; i++) t.equal(JSON.parse((await send('/read', altered)).body).user, null, 'one character changed: no session')
  // Twice a request: @fastify/secure-session's hook, then the suite's classification of the refusal.
  t.equal(opens, 6, 'an altered cookie is tried on every request: only what opened is kept')
  t.equal(s.logs.events('session.tampered').length, 3)
})
