import fastifySecureSession from '@fastify/secure-session'
import Fastify from 'fastify'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'

const NAME = '__Host-session'

/** A cookie value as @fastify/cookie puts it on the wire (percent-encoded). */
const wire = (sealed: string): string => encodeURIComponent(sealed)

t.test('a corpus of malformed cookies: each gives a fresh session, a session.tampered event without the cookie, never a 5xx', async (t) => {
  const keyBytes = randomBytes(32)
  const s = await startApp({ secureSession: { keys: [keyBytes.toString('base64')] } }, (app) => {
    app.get('/read', async (request) => ({ user: request.session.get('user') ?? null }))
    app.post('/set', async (request) => { request.session.set('user', 'alice'); return { ok: true } })
  })
  t.teardown(() => s.close())
  const send = (path: string, cookie?: string, method = 'GET'): Promise<Response> =>
    request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` } })

  const set = await send('/set', undefined, 'POST')
  const line = (set.headers['set-cookie'] ?? [])[0] as string
  const good = parseSetCookie(line).value
  t.equal(JSON.parse((await send('/read', good)).body).user, 'alice', 'the genuine cookie works')

  const [cipherText = '', nonceText = ''] = decodeURIComponent(good).split(';')
  const cipher = Buffer.from(cipherText, 'base64')
  const nonce = Buffer.from(nonceText, 'base64')
  const seal = (c: Buffer, n: Buffer): string => wire(`${c.toString('base64')};${n.toString('base64')}`)
  const flip = (buffer: Buffer, index: number, bit = 1): Buffer => {
    const copy = Buffer.from(buffer)
    copy[index] = (copy[index] as number) ^ bit
    return copy
  }
  // Another key's cookie, made by a plain @fastify/secure-session app.
  const other = Fastify()
  await other.register(fastifySecureSession, { key: randomBytes(32) })
  await other.ready()
  t.teardown(() => other.close())
  const foreign = wire(other.encodeSecureSession(other.createSecureSession({ user: 'mallory' })))
  // Sealed with the right key (only a key holder can make these) but not what the suite writes.
  const sealedWith = (data: Record<string, unknown>): string => wire(s.app.encodeSecureSession(s.app.createSecureSession(data)))

  // Other spellings of the genuine cookie, which Node's lenient base64 decoder opens to the same
  // session: characters that are not base64, padding (test/cookie-format.test.ts has the rest).
  const genuine = decodeURIComponent(good)
  const inserted = wire(`${genuine.slice(0, 20)}!!${genuine.slice(20)}`)
  const padded = wire(`${cipherText}==;${nonceText}`)
  t.same(Buffer.from(`${cipherText}==`, 'base64'), cipher, 'the padded spelling decodes to the same bytes')

  const corpus: Array<[string, string, string, string]> = [
    ['the genuine cookie with two characters base64 does not have inserted', inserted, 'session.tampered', 'malformed'],
    ['the genuine cookie with padding after its ciphertext', padded, 'session.tampered', 'malformed'],
    ['empty', '', 'session.tampered', 'empty'],
    ['huge (5000 characters)', 'A'.repeat(5000), 'session.tampered', 'oversized'],
    ['bad base64, no separator', 'not*base64!', 'session.tampered', 'malformed'],
    ['broken percent-encoding', '%E0%A4%A', 'session.tampered', 'malformed'],
    ['nonce of the wrong length', seal(cipher, nonce.subarray(0, 12)), 'session.tampered', 'bad-nonce'],
    ['ciphertext shorter than a MAC', seal(cipher.subarray(0, 10), nonce), 'session.tampered', 'truncated'],
    ['ciphertext truncated by one byte', seal(cipher.subarray(0, cipher.length - 1), nonce), 'session.tampered', 'decrypt-failed'],
    ['one extra byte', seal(Buffer.concat([cipher, Buffer.from([0])]), nonce), 'session.tampered', 'decrypt-failed'],
    ['bit flip in the nonce', seal(cipher, flip(nonce, 5)), 'session.tampered', 'decrypt-failed'],
    ['bit flip in the MAC', seal(flip(cipher, 3), nonce), 'session.tampered', 'decrypt-failed'],
    ['bit flip in the ciphertext', seal(flip(cipher, cipher.length - 3, 0x80), nonce), 'session.tampered', 'decrypt-failed'],
    ['random bytes of the right lengths', seal(randomBytes(cipher.length), randomBytes(24)), 'session.tampered', 'decrypt-failed'],
    ['another key\'s cookie', foreign, 'session.tampered', 'decrypt-failed'],
    ['valid crypto, a creation time that is not a number', sealedWith({ __created: 'yesterday', user: 'mallory' }), 'session.tampered', 'invalid-payload'],
    ['a store-mode cookie (an id, no data) in cookie mode', sealedWith({ __created: Math.round(Date.now() / 1000), __sid: 'x'.repeat(43) }), 'session.expired', 'store-mismatch']
  ]
  for (const [label, value, event, reason] of corpus) {
    const before = s.logs.events(event).length
    const response = await send('/read', value)
    t.equal(response.status, 200, `${label}: not an error`)
    t.same(JSON.parse(response.body), { user: null }, `${label}: a fresh session`)
    const events = s.logs.events(event)
    t.equal(events.length, before + 1, `${label}: one ${event} event`)
    const found = events[events.length - 1]
    t.equal(found?.reason, reason, `${label}: reason ${reason}`)
    if (value.length > 8) t.notOk(JSON.stringify(found).includes(value.slice(0, 40)), `${label}: the event does not carry the cookie`)
    const cleared = (response.headers['set-cookie'] ?? []).map(parseSetCookie).find((c) => c.name === NAME)
    t.equal(cleared?.attributes['max-age'], '0', `${label}: the bad cookie is expired so it is not sent again`)
  }

  // Random mutations: whatever arrives, the answer is a 200 with a fresh session or the genuine one.
  let errors = 0
  const raw = Buffer.from(decodeURIComponent(good), 'latin1')
  for (let i = 0; i < 200; i++) {
    const copy = Buffer.from(raw)
    const mode = i % 3
    if (mode === 0) copy[i % copy.length] = (copy[i % copy.length] as number) ^ (1 + (i % 255))
    const value = mode === 1 ? copy.subarray(0, i % copy.length).toString('latin1') : mode === 2 ? randomBytes(i).toString('base64') : copy.toString('latin1')
    const response = await send('/read', wire(value))
    if (response.status >= 500) errors++
  }
  t.equal(errors, 0, '200 random mutations: no 5xx')
})

t.test('tamper events are rate-limited so a flood cannot fill the log', async (t) => {
  const s = await startApp({ secureSession: { keys: [randomBytes(32).toString('base64')] } }, (app) => {
    app.get('/read', async (request) => ({ user: request.session.get('user') ?? null }))
  })
  t.teardown(() => s.close())
  for (let i = 0; i < 70; i++) {
    await request(`${s.url}/read`, { ca: s.cert ?? undefined, headers: { cookie: `${NAME}=garbage!` } })
  }
  t.equal(s.logs.events('session.tampered').length, 60, 'at most 60 a minute')
})
