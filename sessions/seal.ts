/**
 * Sealing a session cookie in @fastify/secure-session's format, so that its `decodeSecureSession`
 * (in this process, in an instance not yet switched over, or after a rollback) opens what the suite
 * writes: `base64(XSalsa20-Poly1305(JSON payload, nonce, newest key)) ";" base64(nonce)`, the
 * construction and the libsodium binding of its `encodeSecureSession`. Three things differ, none
 * in what is sealed nor in its strength:
 * - the nonces (24 random bytes each) are cut from a pool of 256 filled by one `randomFillSync`
 *   (OpenSSL's CSPRNG, seeded by the kernel, in user space), instead of one `getrandom` system call
 *   per cookie (libsodium's `randombytes_buf`, which also splits a larger fill into calls of 256
 *   bytes: 24 per pool); each is used once, and the pool of a process is its own (Node.js starts
 *   cluster workers and children as new processes, and OpenSSL reseeds a forked one);
 * - the payload's JSON text is handed back, for the cache of opened cookies
 *   (sessions/opened-cookies.ts), instead of being made a second time;
 * - both halves are base64url without padding (RFC 4648 section 5), which Node.js's base64 decoder,
 *   the one `decodeSecureSession` uses, reads as it reads base64: the cookie value then needs no
 *   percent-encoding but for its `;` (`%3B`), so the `Set-Cookie` line is built without
 *   `encodeURIComponent` and is shorter (no `%2B`, `%2F`, `%3D`).
 * The JSON is that of the object the session keeps its values and `__ts` in, as
 * `encodeSecureSession` stringifies it, when the caller has that object (a session the suite made
 * with `createSecureSession`); otherwise the same keys and values, from `data()` and `__ts`.
 * Loaded when the session plugin registers, with the binding.
 */
import { randomFillSync } from 'node:crypto'
import sodium from 'sodium-native'
import type { OpenedSession } from './opened-cookies.ts'

/** Nonces cut from one fill of the pool. */
export const NONCES_PER_FILL = 256

/** A sealed session: the cookie value, before and after percent-encoding, and the JSON it holds. */
export interface Sealed {
  /** `ciphertext;nonce`, as @fastify/cookie hands it to `decodeSecureSession`. */
  value: string
  /** The same percent-encoded, as `encodeURIComponent` would (`;` as `%3B`): what Set-Cookie carries. */
  encoded: string
  /** The nonce's base64url: the value's last characters, after its `;`. */
  nonce: string
  text: string
  /** The payload's `__ts`. */
  ts: unknown
}

/** Random nonces for XSalsa20, cut from a pool refilled when it runs out. @internal */
export function noncePool (fill: (buffer: Uint8Array) => void = randomFillSync, size = sodium.crypto_secretbox_NONCEBYTES, count = NONCES_PER_FILL): () => Buffer {
  let pool = Buffer.alloc(0)
  let offset = 0
  return function nextNonce () {
    if (offset === pool.length) {
      // A new buffer each fill: a nonce handed out before stays as it was.
      pool = Buffer.allocUnsafe(size * count)
      fill(pool)
      offset = 0
    }
    const nonce = pool.subarray(offset, offset + size)
    offset += size
    return nonce
  }
}

/**
 * Seals sessions with `key` (the newest), as @fastify/secure-session's `encodeSecureSession` does.
 * `values`, when given, is the object the session keeps its values and `__ts` in (the one it was
 * made from with `createSecureSession`, which it keeps and writes to: the plugin checks that at
 * start, peerKeepsValues): sealed as it is, without the copy `data()` makes. @internal
 */
export function sessionSealer (key: Buffer, nextNonce: () => Buffer = noncePool()): (session: OpenedSession, values?: Record<string, unknown> | null) => Sealed {
  if (key.length !== sodium.crypto_secretbox_KEYBYTES) throw new Error(`a session key must be ${sodium.crypto_secretbox_KEYBYTES} bytes`)
  return function seal (session, values) {
    let payload: Record<string, unknown>
    let ts: unknown
    if (values != null) {
      payload = values
      ts = values.__ts
    } else {
      // The values (data(): all but __ts) and __ts, as @fastify/secure-session seals its whole object.
      payload = session.data() ?? {}
      ts = session.get('__ts')
      payload.__ts = ts
    }
    const text = JSON.stringify(payload)
    const message = Buffer.from(text)
    const cipher = Buffer.allocUnsafe(message.length + sodium.crypto_secretbox_MACBYTES)
    const nonce = nextNonce()
    sodium.crypto_secretbox_easy(cipher, message, nonce, key)
    const sealed = cipher.toString('base64url')
    const once = nonce.toString('base64url')
    // The value joined into one flat string (the cache of opened cookies keeps it and compares it
    // whole); the encoded line is written once, into the Set-Cookie header.
    return { value: [sealed, once].join(';'), encoded: sealed + '%3B' + once, nonce: once, text, ts }
  }
}

/**
 * Opens a cookie value with any of `keys` as @fastify/secure-session's `decodeSecureSession` does
 * (the first two `;`-separated halves, Node's base64 decoder), without its expiry test: the payload,
 * or null when no key opens it or it is not a JSON object. Used only to tell who wrote a cookie
 * that `decodeSecureSession` refused as expired, never to open a session. @internal
 */
export function sessionOpener (keys: readonly Buffer[]): (value: string) => Record<string, unknown> | null {
  return function open (value) {
    const halves = value.split(';', 2)
    if (halves.length < 2) return null
    const cipher = Buffer.from(halves[0] as string, 'base64')
    const nonce = Buffer.from(halves[1] as string, 'base64')
    if (cipher.length < sodium.crypto_secretbox_MACBYTES || nonce.length !== sodium.crypto_secretbox_NONCEBYTES) return null
    const message = Buffer.allocUnsafe(cipher.length - sodium.crypto_secretbox_MACBYTES)
    if (!keys.some((key) => sodium.crypto_secretbox_open_easy(message, cipher, nonce, key))) return null
    try {
      const payload: unknown = JSON.parse(message.toString())
      return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? payload as Record<string, unknown> : null
    } catch {
      return null
    }
  }
}
