/**
 * The sealed cookie's format (sessions/cookie-format.ts): one canonical spelling per form, so that a
 * genuine cookie cannot be respelled into endless values that all open; signed cookies of apps that
 * ran @fastify/secure-session with `cookie: { signed: true }` unsigned first.
 */
import fc from 'fast-check'
import t from 'tap'
import { isSealedFormat, NOT_SEALED_FORMAT, strictDecode } from '../sessions/cookie-format.ts'
import { classifyDecodeFailure } from '../sessions/lifetimes.ts'
import type { OpenedSession } from '../sessions/opened-cookies.ts'

const suiteForm = (cipher: Uint8Array, nonce: Uint8Array): string => `${Buffer.from(cipher).toString('base64url')};${Buffer.from(nonce).toString('base64url')}`
const peerForm = (cipher: Uint8Array, nonce: Uint8Array): string => `${Buffer.from(cipher).toString('base64')};${Buffer.from(nonce).toString('base64')}`
/** What @fastify/secure-session's decoder reads out of a value: Node's lenient base64, both halves. */
const lenient = (value: string): string => value.split(';').map((half) => Buffer.from(half, 'base64').toString('hex')).join(';')

const sealedBytes = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 300 }), fc.uint8Array({ minLength: 24, maxLength: 24 }))

t.test('both forms a cookie is written in are accepted: the suite\'s base64url, @fastify/secure-session\'s base64', async (t) => {
  fc.assert(fc.property(sealedBytes, ([cipher, nonce]) => isSealedFormat(suiteForm(cipher, nonce)) && isSealedFormat(peerForm(cipher, nonce))), { numRuns: 500 })
  t.pass('500 random cookies in each form')
})

t.test('every other spelling of the same bytes is refused', async (t) => {
  const noise = fc.constantFrom('!', '.', ' ', '\t', '=', '%', '*', '"', '\\', '~', 'é', '\u0000')
  const mutation = fc.oneof(
    // a character that is not base64, anywhere (the decoder skips it)
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ unit: noise, minLength: 1, maxLength: 3 }) }),
    // padding that is not needed, or is missing
    fc.record({ kind: fc.constant('pad' as const), half: fc.constantFrom(0, 1), count: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ kind: fc.constant('unpad' as const) }),
    // the unused low bits of a half's last character
    fc.record({ kind: fc.constant('low-bits' as const), half: fc.constantFrom(0, 1), bit: fc.integer({ min: 1, max: 15 }) }),
    // one half in the other alphabet
    fc.record({ kind: fc.constant('mix' as const), half: fc.constantFrom(0, 1) })
  )
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  let refused = 0
  fc.assert(fc.property(sealedBytes, fc.boolean(), mutation, ([cipher, nonce], peer, m) => {
    const original = peer ? peerForm(cipher, nonce) : suiteForm(cipher, nonce)
    const halves = original.split(';') as [string, string]
    let mutated: string
    switch (m.kind) {
      case 'insert': {
        const at = m.at % (original.length + 1)
        mutated = original.slice(0, at) + m.text + original.slice(at)
        break
      }
      case 'pad':
        halves[m.half] += '='.repeat(m.count)
        mutated = halves.join(';')
        break
      case 'unpad':
        mutated = original.replace(/=/g, '')
        break
      case 'low-bits': {
        const half = halves[m.half] as string
        const stripped = half.replace(/=+$/, '')
        const last = stripped.slice(-1)
        const index = alphabet.indexOf(last === '+' ? '-' : last === '/' ? '_' : last)
        const flipped = alphabet[index ^ (m.bit & 0b1111)] as string
        halves[m.half] = stripped.slice(0, -1) + (peer ? flipped.replace('-', '+').replace('_', '/') : flipped) + half.slice(stripped.length)
        mutated = halves.join(';')
        break
      }
      case 'mix': {
        const half = halves[m.half] as string
        halves[m.half] = peer ? Buffer.from(half, 'base64').toString('base64url') : Buffer.from(half, 'base64url').toString('base64')
        mutated = halves.join(';')
        break
      }
    }
    // Only mutations that keep the bytes matter: the others fail to decrypt.
    if (mutated === original || lenient(mutated) !== lenient(original)) return true
    const canonical = mutated === suiteForm(cipher, nonce) || mutated === peerForm(cipher, nonce)
    if (!canonical) refused++
    return isSealedFormat(mutated) === canonical
  }), { numRuns: 3000 })
  t.ok(refused > 300, `respellings of the same bytes refused (${refused} of 3000 runs)`)
})

t.test('shapes that are no sealed cookie', async (t) => {
  for (const value of ['', ';', 'abc', 'abc;', ';abc', 'ab;cd;ef', 'QUJD;', 'QUJD;QUJD;', 'QUJD ;QUJD', 'QUJD;QUJD\n']) {
    t.notOk(isSealedFormat(value), JSON.stringify(value))
  }
  t.ok(isSealedFormat('QUJD;QUJD'), 'two canonical halves')
  t.notOk(isSealedFormat(`${'A'.repeat(4_000_000)}!;QUJD`), 'a 4 MB value is refused (one pass over it)')
})

class Opened implements OpenedSession {
  changed = false
  readonly from: string
  constructor (from: string) {
    this.from = from
  }

  data (): Record<string, unknown> { return { from: this.from } }
  get (key: string): unknown { return key === 'from' ? this.from : undefined }
}

t.test('strictDecode: the sealed format goes to decode; a valid signature is removed first; another spelling of what decode opens is null and logged', async (t) => {
  const decoded: string[] = []
  const messages: string[] = []
  const log = { debug: (message: string) => { messages.push(message) } }
  // Opens the genuine value and, as Node's lenient base64 would, a respelling of it; refuses the rest in its own words.
  const opens = new Set(['QUJD;QUJD', 'QUJD!;QUJD', 'not;sealed!', 'anything'])
  const decode = (cookie: string, given?: typeof log, name?: string): Opened | null => {
    decoded.push(`${name ?? 'session'}:${cookie}`)
    if (opens.has(cookie)) return new Opened(cookie)
    given?.debug('peer: refused')
    return null
  }
  const signed = new Map([['QUJD;QUJD.sig', 'QUJD;QUJD'], ['not;sealed!.sig', 'not;sealed!']])
  const unsign = (value: string): string | null => signed.get(value) ?? null
  const open = strictDecode(decode, 'session', unsign)

  t.equal(open('QUJD;QUJD', log)?.from, 'QUJD;QUJD', 'the sealed format is opened')
  t.equal(open('QUJD;QUJD.sig', log)?.from, 'QUJD;QUJD', 'a signed cookie is opened unsigned')
  t.same(messages, [], 'without a word')
  t.equal(open('QUJD!;QUJD', log), null, 'another spelling that decode opens is refused')
  t.same(messages, [NOT_SEALED_FORMAT], 'and logged at debug, as the peer logs its own refusals')
  t.same(classifyDecodeFailure(NOT_SEALED_FORMAT), { event: 'session.tampered', reason: 'malformed' }, 'which the suite reports as malformed')
  messages.length = 0
  t.equal(open('QUJD;QUJD.forged', log), null, 'a signature that is not valid opens nothing')
  t.equal(open('bad;', log), null, 'a value decode refuses is refused')
  t.same(messages, ['peer: refused', 'peer: refused'], 'in decode\'s own words')
  messages.length = 0
  t.equal(open('not;sealed!.sig', log), null, 'a valid signature around a value not in the format opens nothing')
  t.same(messages, ['peer: refused'], 'decode was asked with the signed value, which it refuses')
  t.same(decoded, ['session:QUJD;QUJD', 'session:QUJD;QUJD', 'session:QUJD!;QUJD', 'session:QUJD;QUJD.forged', 'session:bad;', 'session:not;sealed!.sig'], 'what decode saw')

  t.equal(open('anything', undefined, 'other')?.from, 'anything', 'another session name is the peer\'s business: opened as it is, format or not')
  t.equal(decoded.at(-1), 'other:anything')
  t.equal(open('QUJD!;QUJD'), null, 'no log given: still null')
  t.equal(strictDecode(decode, 'session')('QUJD;QUJD.sig', log), null, 'without @fastify/cookie\'s secret a signed value opens nothing')
})
