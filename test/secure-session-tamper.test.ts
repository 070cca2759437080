import { randomBytes } from 'node:crypto'
import t from 'tap'
import { cookieCodec } from '../plugins/secure-session.js'
import { startApp } from './helpers/app.js'
import { parseSetCookie, request, type Response } from './helpers/http.js'

const NAME = '__Host-session'

t.test('a corpus of malformed cookies: each gives a fresh session, a session.tampered event without the cookie, never a 5xx', async (t) => {
  const keyBytes = randomBytes(32)
  const s = await startApp({ secureSession: { keys: [keyBytes.toString('base64')] } }, (app) => {
    app.get('/read', async (request) => ({ user: request.session.get('user') ?? null, isNew: request.session.isNew }))
    app.post('/set', async (request) => { request.session.set('user', 'alice'); return { ok: true } })
  })
  t.teardown(() => s.close())
  const send = (path: string, cookie?: string, method = 'GET'): Promise<Response> =>
    request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` } })

  const set = await send('/set', undefined, 'POST')
  const line = (set.headers['set-cookie'] ?? [])[0] as string
  const good = parseSetCookie(line).value
  t.equal(JSON.parse((await send('/read', good)).body).user, 'alice', 'the genuine cookie works')

  const raw = Buffer.from(good, 'base64url')
  const flip = (index: number, bit = 1): string => {
    const copy = Buffer.from(raw)
    copy[index] = (copy[index] as number) ^ bit
    return copy.toString('base64url')
  }
  const withVersion = (version: number): string => {
    const copy = Buffer.from(raw)
    copy[0] = version
    return copy.toString('base64url')
  }
  // Sealed with the right key but not a session payload: only someone holding the key could make
  // it, and it must still not crash the request.
  const codec = cookieCodec([keyBytes])
  const wrongShape = codec.seal({ v: 2, c: 1, t: 1, x: 1 } as never)

  const corpus: Array<[string, string, string]> = [
    ['empty', '', 'empty'],
    ['huge (5000 characters)', 'A'.repeat(5000), 'oversized'],
    ['bad base64', 'not*base64!', 'malformed'],
    ['broken percent-encoding', '%E0%A4%A', 'malformed'],
    ['a quoted value', `"${good}"`, 'malformed'],
    ['standard base64 with padding', `${raw.toString('base64')}==`, 'malformed'],
    ['wrong length: 10 bytes', randomBytes(10).toString('base64url'), 'truncated'],
    ['truncated to half', good.slice(0, 40), 'truncated'],
    ['truncated by one byte', raw.subarray(0, raw.length - 1).toString('base64url'), 'decrypt-failed'],
    ['one extra byte', Buffer.concat([raw, Buffer.from([0])]).toString('base64url'), 'decrypt-failed'],
    ['wrong version byte 0', withVersion(0), 'unknown-version'],
    ['wrong version byte 2', withVersion(2), 'unknown-version'],
    ['bit flip in the nonce', flip(5), 'decrypt-failed'],
    ['bit flip in the MAC', flip(30), 'decrypt-failed'],
    ['bit flip in the ciphertext', flip(raw.length - 3, 0x80), 'decrypt-failed'],
    ['random bytes of the right length', Buffer.concat([Buffer.from([1]), randomBytes(raw.length - 1)]).toString('base64url'), 'decrypt-failed'],
    ['another key\'s cookie', cookieCodec([randomBytes(32)]).seal({ v: 1, c: 1, t: 1, x: 9e9, d: { user: 'mallory' } }), 'decrypt-failed'],
    ['valid crypto, not a session payload', wrongShape, 'invalid-payload']
  ]
  for (const [label, value, reason] of corpus) {
    const before = s.logs.events('session.tampered').length
    const response = await send('/read', value)
    t.equal(response.status, 200, `${label}: not an error`)
    t.same(JSON.parse(response.body), { user: null, isNew: true }, `${label}: a fresh session`)
    const events = s.logs.events('session.tampered')
    t.equal(events.length, before + 1, `${label}: one session.tampered event`)
    const event = events[events.length - 1]
    t.equal(event?.reason, reason, `${label}: reason ${reason}`)
    if (value.length > 8) t.notOk(JSON.stringify(event).includes(value.slice(0, 40)), `${label}: the event does not carry the cookie`)
    const cleared = (response.headers['set-cookie'] ?? []).map(parseSetCookie).find((c) => c.name === NAME)
    t.equal(cleared?.attributes['max-age'], '0', `${label}: the bad cookie is expired so it is not sent again`)
  }

  // Random mutations: whatever arrives, the answer is a 200 with a fresh session or the genuine one.
  let errors = 0
  for (let i = 0; i < 200; i++) {
    const copy = Buffer.from(raw)
    const mode = i % 3
    if (mode === 0) copy[i % copy.length] = (copy[i % copy.length] as number) ^ (1 + (i % 255))
    const value = mode === 1 ? copy.subarray(0, i % copy.length).toString('base64url') : mode === 2 ? randomBytes(i).toString('base64url') : copy.toString('base64url')
    const response = await send('/read', value)
    if (response.status >= 500) errors++
  }
  t.equal(errors, 0, '200 random mutations: no 5xx')
})

t.test('tamper events are rate-limited so a flood cannot fill the log', async (t) => {
  const s = await startApp({ secureSession: { keys: [randomBytes(32).toString('base64')] } }, (app) => {
    app.get('/read', async (request) => ({ isNew: request.session.isNew }))
  })
  t.teardown(() => s.close())
  for (let i = 0; i < 70; i++) {
    await request(`${s.url}/read`, { ca: s.cert ?? undefined, headers: { cookie: `${NAME}=garbage!` } })
  }
  t.equal(s.logs.events('session.tampered').length, 60, 'at most 60 a minute')
})
