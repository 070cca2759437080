/**
 * sessions/seal.ts: what the suite seals is what @fastify/secure-session writes and opens (its own
 * decodeSecureSession, in a plain app with the same key, reads it back value for value), and the
 * nonces cut from the pool are each used once.
 */
import fastifySecureSession from '@fastify/secure-session'
import fc from 'fast-check'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { OpenedSession } from '../sessions/opened-cookies.ts'
import { noncePool, sessionSealer } from '../sessions/seal.ts'

const session = (values: Record<string, unknown>): OpenedSession => ({
  data () {
    const copy = { ...values }
    delete copy.__ts
    return copy
  },
  get (key: string) { return values[key] },
  changed: false
})

t.test('a plain @fastify/secure-session app opens what the suite seals, value for value', async (t) => {
  const key = randomBytes(32)
  const plain = Fastify()
  await plain.register(fastifySecureSession, { key })
  await plain.ready()
  t.teardown(() => plain.close())
  const seal = sessionSealer(key)
  const ts = Math.round(Date.now() / 1000)

  const sealed = seal(session({ user: 'alice', __created: ts - 10, __ts: ts }))
  t.match(sealed.value, /^[A-Za-z0-9_-]+;[A-Za-z0-9_-]{32}$/, 'base64url ciphertext ; base64url of a 24-byte nonce, no padding')
  t.equal(sealed.encoded, encodeURIComponent(sealed.value), 'the percent-encoded value is what encodeURIComponent makes of it')
  t.equal(decodeURIComponent(sealed.encoded), sealed.value, 'and @fastify/cookie\'s decoding gives the value back')
  t.same(JSON.parse(sealed.text), { user: 'alice', __created: ts - 10, __ts: ts }, 'the text handed back is the payload sealed')
  const opened = plain.decodeSecureSession(sealed.value)
  t.equal(opened?.get('user'), 'alice')
  t.equal(opened?.get('__ts'), ts)
  t.equal(opened?.changed, false, 'sealed with its newest (only) key')

  const values = fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== '__ts' && k !== '__proto__'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 })
  fc.assert(fc.property(values, (data) => {
    const { value, encoded, text } = seal(session({ ...data, __ts: ts }))
    if (encoded !== encodeURIComponent(value)) return false
    const back = plain.decodeSecureSession(value)
    return back !== null && JSON.stringify(back.data()) === JSON.stringify(JSON.parse(JSON.stringify(data))) && back.get('__ts') === ts &&
      text === JSON.stringify({ ...JSON.parse(JSON.stringify(data)), __ts: ts })
  }), { numRuns: 300 })

  const other = sessionSealer(randomBytes(32))
  t.equal(plain.decodeSecureSession(other(session({ user: 'mallory', __ts: ts })).value), null, 'another key\'s seal does not open')
  t.throws(() => sessionSealer(randomBytes(16)), /32 bytes/, 'a key of the wrong length is refused')
})

t.test('the nonce pool: every nonce once, one fill per pool, nonces handed out are never rewritten', async (t) => {
  let fills = 0
  const next = noncePool((buffer) => { fills++; buffer.set(randomBytes(buffer.length)) }, 24, 4)
  const nonces = Array.from({ length: 1000 }, () => next())
  const copies = nonces.map((n) => Buffer.from(n))
  t.equal(fills, 250, 'one fill per 4 nonces')
  t.equal(new Set(nonces.map((n) => n.toString('hex'))).size, 1000, '1000 distinct nonces')
  t.ok(nonces.every((n) => n.length === 24))
  t.ok(nonces.every((n, i) => n.equals(copies[i] as Buffer)), 'later fills do not touch a nonce already used')

  const real = noncePool()
  const seen = new Set<string>()
  for (let i = 0; i < 3000; i++) seen.add(real().toString('hex'))
  t.equal(seen.size, 3000, 'the default fill (randomFillSync): 3000 distinct nonces across 12 fills')

  const seal = sessionSealer(randomBytes(32))
  const values = new Set<string>()
  for (let i = 0; i < 600; i++) values.add(seal(session({ user: 'alice', __ts: 1 })).value)
  t.equal(values.size, 600, 'the same session sealed 600 times gives 600 different cookies')
})
