/**
 * The `secureSession` plugin: encrypted cookie sessions with the cookie settings browsers enforce
 * for a login cookie, key rotation, lifetimes enforced inside the encrypted payload, tamper
 * events, and optional CSRF tokens and server-side storage.
 *
 * The crypto is libsodium's secretbox (XSalsa20-Poly1305, 192-bit random nonces), the same binding
 * @fastify/secure-session uses; the cookie format, the lifetimes and the hooks are ours, because
 * @fastify/secure-session decrypts every cookie on every request, restarts its lifetime on each
 * write, and has no version byte, idle timeout or tamper event.
 *
 * Cookie value: base64url( version 0x01 | nonce (24 bytes) | secretbox(JSON payload) ), where the
 * payload is `{ v: 1, c: created, t: issued, x: cookie expiry, d: data }` (seconds since the
 * epoch), or `{ ..., i: id }` with a store instead of `d`.
 */
/// <reference types="@fastify/csrf-protection" preserve="true" />
import fastifyCookie from '@fastify/cookie'
import fastifyCsrfProtection from '@fastify/csrf-protection'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { isProductionEnv, parseOptions } from '../schemas/common.js'
import { effectiveCookieName, SESSION_KEY_BYTES, secureSessionSchema, type SecureSessionConfig, type SecureSessionOptions } from '../schemas/secure-session.js'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.js'
import type { SessionStore, StoredSessionData } from './session-store.js'
import { openSessionStore, sessionsControl } from './session-store-redis.js'

declare module 'fastify' {
  /**
   * The values an app keeps in `request.session`. Augment it to type them:
   * `declare module 'fastify' { interface SessionData { user: string } }`.
   */
  interface SessionData {}

  /** `request.session`, from fastify-secure-https's secureSession plugin. */
  interface SecureSession {
    /** A value of the session; undefined when not set. */
    get<K extends string>(key: K): (K extends keyof SessionData ? SessionData[K] : unknown) | undefined
    /** Sets a value (JSON-serialisable); `undefined` removes it. The cookie is re-issued with the response. */
    set<K extends string>(key: K, value: (K extends keyof SessionData ? SessionData[K] : unknown) | undefined): void
    /** A shallow copy of every value. */
    data (): Partial<SessionData> & Record<string, unknown>
    /**
     * A new session: every value is dropped (except the keys listed in `keep`), a new creation
     * time (and a new id with a store, the old one destroyed) and a new cookie. Call it at login
     * so that a session planted before (fixation) is worth nothing.
     */
    regenerate (keep?: readonly string[]): void
    /** Ends the session: the response expires the cookie (and destroys the stored session). */
    delete (): void
    /** Re-issues the cookie with this response even though no value changed. */
    touch (): void
    /**
     * Accepted for @fastify/csrf-protection's `generateCsrf(options)`; per-response cookie
     * options are ignored: the cookie's attributes are fixed by the plugin's configuration.
     */
    options (opts: unknown): void
    /** True when no valid session came with the request (none, expired or rejected). */
    readonly isNew: boolean
    /** True when the response will write the session. */
    readonly changed: boolean
    /** True after `delete()`. */
    readonly deleted: boolean
  }

  interface FastifyRequest {
    /**
     * The session, decrypted on first access (a request that never reads it pays nothing).
     * From fastify-secure-https's secureSession plugin.
     */
    session: SecureSession
  }

  interface FastifyContextConfig {
    /** `false` exempts this route from the CSRF check of `secureSession({ csrf: true })` (webhooks, APIs with their own auth). */
    csrf?: boolean
  }
}

interface Sodium {
  crypto_secretbox_NONCEBYTES: number
  crypto_secretbox_MACBYTES: number
  crypto_secretbox_easy (cipher: Buffer, message: Buffer, nonce: Buffer, key: Buffer): void
  crypto_secretbox_open_easy (message: Buffer, cipher: Buffer, nonce: Buffer, key: Buffer): boolean
  randombytes_buf (buffer: Buffer): void
}

// The libsodium binding that @fastify/secure-session depends on, resolved from that package so that
// strict installs (pnpm) find it too.
const requireHere = createRequire(import.meta.url)
const sodium = createRequire(requireHere.resolve('@fastify/secure-session'))('sodium-native') as Sodium

/** Version byte of the cookie format. @internal */
export const COOKIE_VERSION = 1
const NONCE_BYTES = sodium.crypto_secretbox_NONCEBYTES
const MAC_BYTES = sodium.crypto_secretbox_MACBYTES
const HEADER_BYTES = 1 + NONCE_BYTES
/** Browsers keep cookies up to about 4096 bytes; a longer value cannot be one we wrote. @internal */
export const MAX_COOKIE_CHARS = 4096
/**
 * A cookie presented this long after the expiry its own Max-Age gave the browser was not sent by a
 * browser that obeyed it: it is a replay (a copied cookie), not an expiry.
 */
const REPLAY_GRACE_SECONDS = 60
const BASE64URL = /^[A-Za-z0-9_-]+$/
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Why a cookie gave no session. */
export type SessionRejection =
  | { event: 'session.tampered', reason: 'empty' | 'oversized' | 'malformed' | 'truncated' | 'unknown-version' | 'decrypt-failed' | 'invalid-payload' | 'replayed-past-expiry' }
  | { event: 'session.expired', reason: 'max-age' | 'idle' | 'not-in-store' }

interface Payload {
  v: number
  /** Created (seconds). */
  c: number
  /** Issued: when this cookie was written (seconds); the idle timeout counts from it. */
  t: number
  /** The expiry the cookie's Max-Age gave the browser (seconds). */
  x: number
  d?: Record<string, unknown>
  i?: string
}

type Decoded = { ok: true, payload: Payload, keyIndex: number } | ({ ok: false } & SessionRejection)

function isPayload (value: unknown): value is Payload {
  if (typeof value !== 'object' || value === null) return false
  const p = value as Record<string, unknown>
  return p.v === COOKIE_VERSION && Number.isInteger(p.c) && Number.isInteger(p.t) && Number.isInteger(p.x) &&
    ((typeof p.d === 'object' && p.d !== null && !Array.isArray(p.d)) || (typeof p.i === 'string' && p.i.length > 0))
}

/** Seals and opens cookie values with a key list, newest first. @internal */
export function cookieCodec (keys: readonly Buffer[]) {
  const newest = keys[0]
  if (newest === undefined) throw new Error('cookieCodec needs at least one key')
  return {
    seal (payload: Payload): string {
      const message = Buffer.from(JSON.stringify(payload), 'utf8')
      const out = Buffer.allocUnsafe(HEADER_BYTES + MAC_BYTES + message.length)
      out[0] = COOKIE_VERSION
      const nonce = out.subarray(1, HEADER_BYTES)
      sodium.randombytes_buf(nonce)
      sodium.crypto_secretbox_easy(out.subarray(HEADER_BYTES), message, nonce, newest)
      return out.toString('base64url')
    },
    /** Opens a cookie value; never throws. Time checks are the caller's. */
    open (value: string): Decoded {
      if (value.length === 0) return { ok: false, event: 'session.tampered', reason: 'empty' }
      if (value.length > MAX_COOKIE_CHARS) return { ok: false, event: 'session.tampered', reason: 'oversized' }
      if (!BASE64URL.test(value)) return { ok: false, event: 'session.tampered', reason: 'malformed' }
      const raw = Buffer.from(value, 'base64url')
      if (raw.length < HEADER_BYTES + MAC_BYTES + 2) return { ok: false, event: 'session.tampered', reason: 'truncated' }
      if (raw[0] !== COOKIE_VERSION) return { ok: false, event: 'session.tampered', reason: 'unknown-version' }
      const nonce = raw.subarray(1, HEADER_BYTES)
      const cipher = raw.subarray(HEADER_BYTES)
      const message = Buffer.allocUnsafe(cipher.length - MAC_BYTES)
      let keyIndex = -1
      for (let i = 0; i < keys.length; i++) {
        if (sodium.crypto_secretbox_open_easy(message, cipher, nonce, keys[i] as Buffer)) {
          keyIndex = i
          break
        }
      }
      if (keyIndex === -1) return { ok: false, event: 'session.tampered', reason: 'decrypt-failed' }
      let payload: unknown
      try {
        payload = JSON.parse(message.toString('utf8'))
      } catch {
        return { ok: false, event: 'session.tampered', reason: 'invalid-payload' }
      }
      if (!isPayload(payload)) return { ok: false, event: 'session.tampered', reason: 'invalid-payload' }
      return { ok: true, payload, keyIndex }
    }
  }
}

const kState = Symbol('fastify-secure-https.session')
interface WithState { [kState]: RequestSession | null }
const stateOf = (request: FastifyRequest): RequestSession | null => (request as unknown as WithState)[kState]
const setState = (request: FastifyRequest, session: RequestSession): void => { (request as unknown as WithState)[kState] = session }

/** The per-request session. @internal */
class RequestSession {
  data_: Record<string, unknown>
  created: number
  /** The expiry that cookie gave the browser; 0 for a new session. */
  expires: number
  id: string | null
  /** Ids to destroy in the store when the response is sent (regenerate, delete). */
  staleIds: string[] = []
  /** A valid cookie came with the request. */
  readonly hadSession: boolean
  /** Some cookie came with the request (valid or not): deleting must expire it. */
  readonly hadCookie: boolean
  /** Values changed. */
  dataChanged = false
  /** The cookie must be rewritten (new id, rotation, idle renewal, touch). */
  reissue = false
  isDeleted = false
  /** The store failed to load this session: touching it fails the request (503), nothing is written. */
  unavailable: Error | null = null

  constructor (data: Record<string, unknown>, created: number, expires: number, id: string | null, hadSession: boolean, hadCookie: boolean) {
    this.data_ = data
    this.created = created
    this.expires = expires
    this.id = id
    this.hadSession = hadSession
    this.hadCookie = hadCookie
  }

  get isNew (): boolean { return !this.hadSession }
  get changed (): boolean { return this.dataChanged || this.reissue || this.isDeleted }
  get deleted (): boolean { return this.isDeleted }

  get (key: string): unknown {
    return Object.hasOwn(this.data_, key) ? this.data_[key] : undefined
  }

  set (key: string, value: unknown): void {
    // A value set after delete() starts a new session rather than resurrecting the old one.
    if (this.isDeleted) this.regenerate()
    if (value === undefined) delete this.data_[key]
    else this.data_[key] = value
    this.dataChanged = true
  }

  data (): Record<string, unknown> {
    return { ...this.data_ }
  }

  regenerate (keep?: readonly string[]): void {
    const kept: Record<string, unknown> = {}
    if (keep !== undefined && !this.isDeleted) for (const key of keep) if (Object.hasOwn(this.data_, key)) kept[key] = this.data_[key]
    this.data_ = kept
    if (this.id !== null) this.staleIds.push(this.id)
    this.id = null
    this.created = -1 // set when written
    this.isDeleted = false
    this.dataChanged = true
    this.reissue = true
  }

  delete (): void {
    this.data_ = {}
    if (this.id !== null) this.staleIds.push(this.id)
    this.id = null
    this.isDeleted = true
  }

  touch (): void {
    this.reissue = true
  }

  options (_opts: unknown): void {}
}

type Clock = () => number

/** Per-request costs and decisions, built once at register time. */
function sessionEngine (fastify: FastifyInstance, config: SecureSessionConfig, keys: readonly Buffer[], cookieName: string, store: SessionStore | undefined) {
  const codec = cookieCodec(keys)
  const now: Clock = config.now ?? Date.now
  const maxAge = config.maxAge
  const idle = config.idleTimeout
  const limitTampered = eventLimiter(60, now)
  const limitExpired = eventLimiter(60, now)
  const base = {
    path: '/',
    httpOnly: true,
    secure: config.secure,
    sameSite: config.sameSite,
    ...(config.domain === undefined ? {} : { domain: config.domain })
  }
  const expired = Object.freeze({ ...base, maxAge: 0, expires: new Date(0) })
  let warnedPlainHttp = false

  const seconds = (): number => Math.floor(now() / 1000)

  function report (request: FastifyRequest, rejection: SessionRejection, fields: Record<string, unknown>): void {
    const suppressed = (rejection.event === 'session.tampered' ? limitTampered : limitExpired)()
    if (suppressed === false) return unloggedSecurityEvent(rejection.event)
    // Never the cookie itself: it may be a valid session of someone else, replayed.
    const message = rejection.event === 'session.tampered'
      ? `session cookie rejected (${rejection.reason}); starting a fresh session`
      : `session expired (${rejection.reason}); starting a fresh session`
    securityEvent(request.log, rejection.event, { reason: rejection.reason, cookie: cookieName, suppressed, ...fields }, message)
  }

  function fresh (hadCookie: boolean): RequestSession {
    return new RequestSession({}, -1, 0, null, false, hadCookie)
  }

  /** Decodes the request's cookie (not the store): a session, or a fresh one after reporting why. */
  function fromCookie (request: FastifyRequest): RequestSession {
    const value = request.cookies[cookieName]
    if (value === undefined) return fresh(false)
    let decoded: Decoded
    try {
      decoded = codec.open(value)
    } catch {
      decoded = { ok: false, event: 'session.tampered', reason: 'invalid-payload' }
    }
    if (!decoded.ok) {
      report(request, decoded, { cookieLength: value.length })
      return fresh(true)
    }
    const { payload, keyIndex } = decoded
    const t = seconds()
    if (t >= payload.x + REPLAY_GRACE_SECONDS) {
      report(request, { event: 'session.tampered', reason: 'replayed-past-expiry' }, { expiredSecondsAgo: t - payload.x })
      return fresh(true)
    }
    const absoluteEnd = payload.c + maxAge
    const idleEnd = idle > 0 ? payload.t + idle : Infinity
    if (t >= absoluteEnd || t >= idleEnd) {
      const reason = t >= absoluteEnd ? 'max-age' : 'idle'
      report(request, { event: 'session.expired', reason }, { expiredSecondsAgo: t - Math.min(absoluteEnd, idleEnd) })
      return fresh(true)
    }
    const session = new RequestSession(payload.d ?? {}, payload.c, payload.x, payload.i ?? null, true, true)
    if (keyIndex > 0) {
      // Rotation: written with the newest key from now on, so the old key can be removed after maxAge.
      request.log.debug({ keyIndex }, 'session cookie was sealed with an older SESSION_KEYS entry; re-issuing it with the newest')
      session.reissue = true
    }
    // Sliding idle renewal, at most once per half window: not a write on every request.
    if (idle > 0 && (t - payload.t) * 2 >= idle) session.reissue = true
    return session
  }

  /** Writes the cookie for a session that must be (re)issued. */
  function writeCookie (request: FastifyRequest, reply: FastifyReply, session: RequestSession, t: number): void {
    if (session.created < 0) session.created = t
    const end = Math.min(session.created + maxAge, idle > 0 ? t + idle : Infinity)
    if (end <= t) {
      reply.setCookie(cookieName, '', expired)
      return
    }
    const payload: Payload = { v: COOKIE_VERSION, c: session.created, t, x: end }
    if (store === undefined) payload.d = session.data_
    else payload.i = session.id as string
    const value = codec.seal(payload)
    if (value.length + cookieName.length + 1 > MAX_COOKIE_CHARS) {
      // Browsers drop such a cookie silently; keeping the previous one is the lesser harm.
      request.log.error({ bytes: value.length, cookie: cookieName }, `the session is too large for a cookie (${value.length} bytes, browsers keep about ${MAX_COOKIE_CHARS}); the response does not update it. Keep less in the session, or use a server-side store (secureSession({ store }))`)
      return
    }
    if (config.secure && !warnedPlainHttp && request.protocol === 'http') {
      warnedPlainHttp = true
      request.log.warn(`the session cookie "${cookieName}" is Secure but this request came over plain HTTP, so browsers will not store it; behind a TLS proxy set TRUST_PROXY so that the app sees HTTPS`)
    }
    session.expires = end
    reply.setCookie(cookieName, value, { ...base, maxAge: end - t })
  }

  /** onSend without a store: synchronous, and nothing at all for a session never touched. */
  function onSendCookie (request: FastifyRequest, reply: FastifyReply, _payload: unknown, done: () => void): void {
    const session = stateOf(request)
    if (session !== null) {
      if (session.isDeleted || (!session.hadSession && session.hadCookie && !session.dataChanged)) {
        // Logout, or a rejected cookie: expire it so that it is not presented again.
        if (session.hadCookie) reply.setCookie(cookieName, '', expired)
      } else if (session.dataChanged || session.reissue) {
        writeCookie(request, reply, session, seconds())
      }
    }
    done()
  }

  /** onRequest with a store: the id is in the cookie, the data in the store (async, so loaded up front). */
  async function onRequestStore (request: FastifyRequest): Promise<void> {
    if (request.cookies[cookieName] === undefined) return
    const session = fromCookie(request)
    if (session.id !== null) {
      let data
      try {
        data = await (store as SessionStore).get(session.id)
      } catch (error) {
        // Only the requests that use the session fail (503 from the store's error); /healthz and
        // the like are still served while the store is down.
        session.unavailable = error as Error
        setState(request, session)
        return
      }
      if (data === null) {
        report(request, { event: 'session.expired', reason: 'not-in-store' }, {})
        setState(request, fresh(true))
        return
      }
      session.data_ = data
    }
    setState(request, session)
  }

  async function onSendStore (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const session = stateOf(request)
    if (session === null || session.unavailable !== null) return
    const s = store as SessionStore
    // The store is written before the cookie: when it fails, the response carries no cookie at all.
    for (const id of session.staleIds) await s.destroy(id)
    if (session.isDeleted || (!session.hadSession && session.hadCookie && !session.dataChanged)) {
      if (session.hadCookie) reply.setCookie(cookieName, '', expired)
      return
    }
    if (!session.dataChanged && !session.reissue) return
    const t = seconds()
    if (session.id === null) {
      session.id = randomBytes(32).toString('base64url')
      session.reissue = true
    }
    const created = session.created < 0 ? t : session.created
    const end = session.reissue ? Math.min(created + maxAge, idle > 0 ? t + idle : Infinity) : session.expires
    const ttl = Math.max(1, end - t)
    if (session.dataChanged) await s.set(session.id, session.data_ as StoredSessionData, ttl)
    else if (s.touch !== undefined) await s.touch(session.id, ttl)
    else await s.set(session.id, session.data_ as StoredSessionData, ttl)
    if (session.reissue) writeCookie(request, reply, session, t)
  }

  return { fromCookie, fresh, onSendCookie, onRequestStore, onSendStore }
}

const secureSessionPlugin: FastifyPluginAsync<SecureSessionOptions> = async function secureSessionPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(secureSessionSchema, { production: isProductionEnv(process.env.NODE_ENV), ...options }, 'secureSession')
  if (fastify.hasRequestDecorator('session')) {
    throw new Error('request.session already exists (is @fastify/session or @fastify/secure-session registered too?); register only one session plugin')
  }
  let keys = config.keys
  if (keys.length === 0) {
    keys = [randomBytes(SESSION_KEY_BYTES)]
    fastify.log.warn('SESSION_KEYS is not set: sessions use a random key made at start and will NOT survive a restart, nor work across instances. Set SESSION_KEYS (openssl rand -base64 32)')
  }
  const cookieName = effectiveCookieName(config)
  if (!config.secure) {
    fastify.log.warn(`the session cookie "${cookieName}" is sent without the Secure flag and without the __Host- prefix because TLS is off (TLS_MODE=off); anyone on the network can read it. Development only`)
  }
  if (!fastify.hasPlugin('@fastify/cookie')) await fastify.register(fastifyCookie)

  const store = await openSessionStore(config, fastify.log)
  const engine = sessionEngine(fastify, config, keys, cookieName, store)
  if (!fastify.hasDecorator('sessions')) fastify.decorate('sessions', sessionsControl(store))
  fastify.decorateRequest(kState, null)
  fastify.decorateRequest('session', {
    getter (this: FastifyRequest) {
      let session = stateOf(this)
      if (session === null) {
        // Without a store this is the only place a cookie is decrypted: on first access.
        session = store === undefined ? engine.fromCookie(this) : engine.fresh(this.cookies[cookieName] !== undefined)
        setState(this, session)
      }
      if (session.unavailable !== null) throw session.unavailable
      return session as unknown as import('fastify').SecureSession
    }
  })

  if (store === undefined) {
    fastify.addHook('onSend', engine.onSendCookie)
  } else {
    fastify.addHook('onRequest', engine.onRequestStore)
    fastify.addHook('onSend', engine.onSendStore)
    fastify.addHook('onClose', async () => { await store.close?.() })
  }

  if (config.csrf) {
    if (!fastify.hasPlugin('@fastify/csrf-protection')) {
      // Its '@fastify/secure-session' mode keeps the secret with request.session.get/set, which is ours.
      await fastify.register(fastifyCsrfProtection, { sessionPlugin: '@fastify/secure-session' })
    }
    const protect = fastify.csrfProtection.bind(fastify)
    // preHandler: the body (a form's _csrf field) is parsed by then.
    fastify.addHook('preHandler', function csrfCheck (request, reply, done) {
      if (SAFE_METHODS.has(request.method) || request.routeOptions.config.csrf === false) {
        done()
        return
      }
      protect(request, reply, done)
    })
  }
}

/**
 * Encrypted cookie sessions with hardened defaults (`__Host-session`, Secure, HttpOnly,
 * SameSite=Lax), key rotation, payload-enforced lifetimes, tamper events, optional CSRF tokens
 * and an optional server-side store.
 */
export const secureSession = fp(secureSessionPlugin, { fastify: '5.x', name: 'fastify-secure-https/secure-session' })
export default secureSession
