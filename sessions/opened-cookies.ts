/**
 * Session cookies already opened, kept so that the same cookie is not decrypted again on every
 * request. A browser sends the same session cookie with every request until a response replaces
 * it, and @fastify/secure-session opens it in its onRequest hook each time (two base64 decodes,
 * XSalsa20-Poly1305, JSON.parse of a Buffer): about a fifth of a read request's CPU.
 *
 * The cache maps a cookie's exact value (the sealed string, as @fastify/cookie gives it) to the
 * plaintext JSON it opened to and whether an older key opened it. Only a cookie that opened enters
 * it, so a forged or altered cookie always takes the full path and is refused there; a hit hands
 * out a new session object parsed from the text, so what one request changes is never seen by the
 * next. The expiry @fastify/secure-session checks (`__ts + expiry`) is checked again on every hit,
 * and a cookie past it is dropped and given to the full path, which refuses it as before. Bounded:
 * at most `capacity` entries of cookies up to `maxChars` characters, the oldest evicted first.
 *
 * What a hit reveals by its speed is that this exact value was opened lately: only a holder of the
 * cookie can ask, and the cookie is the credential. Pure: no Fastify.
 */

/** What a cookie opened to. @internal */
export interface Opened {
  /** The sealed payload as JSON: the session's values and @fastify/secure-session's `__ts`. */
  text: string
  /** That `__ts` (the last write, seconds), for the expiry test without parsing the text. */
  ts: unknown
  /** An older key than the first opened it: the session must be re-sealed (`changed`). */
  rotated: boolean
}

/** The part of @fastify/secure-session's session object the cache reads and sets. @internal */
export interface OpenedSession {
  data (): Record<string, unknown> | undefined
  get (key: string): unknown
  changed: boolean
}

/** Entries kept by default: the sessions of the last thousand or so active visitors of a process. */
export const OPENED_COOKIES = 1024

/**
 * Characters of a cookie's value the map is keyed by: its end, the base64 of the last 12 of its
 * 24 random nonce bytes. Hashing 16 characters instead of the whole value (about 180) is most of
 * a lookup's cost; the whole value is compared on every hit, so a key shared by chance or by
 * design is a miss, never another cookie's session.
 */
const KEY_CHARS = 16

/**
 * The map's key for a cookie value: its last {@link KEY_CHARS} characters folded into a small
 * integer (31-bit multiply-add, masked to 30 bits so that V8 keeps it unboxed). An integer key is
 * hashed and compared inside the Map's own table; a slice of the value as the key was a new string
 * on every lookup, hashed through V8's runtime (about 550 instructions a request, counted with
 * callgrind). Two values with the same key are handled as two with the same end (a miss, or one
 * replacing the other). Linear in `KEY_CHARS`, whatever the value's length. @internal
 */
export function keyOf (value: string): number {
  let hash = 0
  const end = value.length
  for (let i = end > KEY_CHARS ? end - KEY_CHARS : 0; i < end; i++) hash = (Math.imul(hash, 31) + value.charCodeAt(i)) | 0
  return hash & 0x3fffffff
}

interface Entry extends Opened {
  /** The cookie's whole value. */
  value: string
}

/**
 * A bounded map from a cookie's value to what it opened to, oldest entries evicted first. The
 * order of arrival is kept in a ring of its own: taking the oldest key from the Map's iterator
 * would step over every entry deleted since the Map was last compacted, on every eviction.
 * @internal
 */
export class OpenedCookies {
  private readonly entries = new Map<number, Entry>()
  /** Keys in order of arrival; -1 for a slot never used. */
  private readonly ring: Int32Array
  private next = 0
  readonly capacity: number
  readonly maxChars: number

  constructor (capacity: number, maxChars: number) {
    this.capacity = capacity
    this.maxChars = maxChars
    this.ring = new Int32Array(Math.max(capacity, 0)).fill(-1)
  }

  get size (): number {
    return this.entries.size
  }

  get (value: string): Opened | undefined {
    const entry = this.entries.get(keyOf(value))
    return entry !== undefined && entry.value === value ? entry : undefined
  }

  /** Forgets `value` (its slot in the ring is reused in turn). */
  delete (value: string): void {
    const key = keyOf(value)
    if (this.entries.get(key)?.value === value) this.entries.delete(key)
  }

  /** Keeps what `value` opened to, unless the cookie is too long to be worth its memory. */
  set (value: string, opened: Opened, key: number = keyOf(value)): void {
    if (this.capacity <= 0 || value.length > this.maxChars) return
    const entry = { value, text: opened.text, ts: opened.ts, rotated: opened.rotated }
    // Kept already (or another value with the same end): replaced in place, in the same slot.
    if (this.entries.has(key)) this.entries.set(key, entry)
    else this.add(key, entry)
  }

  /**
   * Keeps a cookie this process sealed (sessions/seal.ts), so that the browser's next request, which
   * sends it back, finds it: the JSON is the very text sealed. Keyed by the nonce's base64, the
   * value's end (32 characters, so keyOf(value) === keyOf(nonce)): the value was just joined from
   * its halves, and reading its end would first copy it whole into one string.
   */
  remember (sealed: { value: string, nonce: string, text: string, ts: unknown }): void {
    if (this.capacity <= 0 || sealed.value.length > this.maxChars) return
    const key = sealed.nonce.length >= KEY_CHARS ? keyOf(sealed.nonce) : keyOf(sealed.value)
    this.set(sealed.value, { text: sealed.text, ts: sealed.ts, rotated: false }, key)
  }

  /** Adds `key`, not in the map, in the ring's next slot. */
  private add (key: number, entry: Entry): void {
    // Every entry holds the slot of its latest arrival, so the Map never outgrows the ring. A key
    // deleted and kept again holds two slots: the older one's turn drops it early (one more miss).
    const oldest = this.ring[this.next] as number
    if (oldest !== -1) this.entries.delete(oldest)
    this.ring[this.next] = key
    this.next = (this.next + 1) % this.capacity
    this.entries.set(key, entry)
  }
}

/** @fastify/secure-session's `decodeSecureSession`, as the cache wraps it. @internal */
export type DecodeSession<S extends OpenedSession, L> = (cookie: string, log?: L, sessionName?: string) => S | null

/**
 * `decode` (the app's `decodeSecureSession`) with the cache in front, for the session named
 * `sessionName`: a hit makes the session with `create` (the app's `createSecureSession`) from the
 * kept text; a miss asks `decode` and keeps what it opened. `expiry` is the one `decode` applies
 * (seconds after `__ts`); `now` is `Date.now`. @internal
 */
export function cachedDecode<S extends OpenedSession, L> (
  decode: DecodeSession<S, L>,
  create: (data: Record<string, unknown>) => S,
  cache: OpenedCookies,
  expiry: number,
  sessionName: string,
  now: () => number = Date.now
): DecodeSession<S, L> {
  return function decodeSecureSession (cookie, log, name) {
    if (typeof cookie !== 'string' || (name !== undefined && name !== sessionName)) return decode(cookie, log, name)
    const hit = cache.get(cookie)
    if (hit !== undefined) {
      // The very test @fastify/secure-session applies; past it the full path refuses (and says why).
      if (((hit.ts as number) + expiry) * 1000 - now() > 0) {
        const session = create(JSON.parse(hit.text) as Record<string, unknown>)
        session.changed = hit.rotated
        return session
      }
      cache.delete(cookie)
    }
    const session = decode(cookie, log, name)
    if (session !== null) {
      const payload = session.data() ?? {}
      const ts = session.get('__ts')
      payload.__ts = ts
      cache.set(cookie, { text: JSON.stringify(payload), ts, rotated: session.changed })
    }
    return session
  }
}
