/**
 * The `secureSession` plugin: @fastify/secure-session, registered for real in the app's context
 * (its cookie format, its `request.session`, its decorators, its key arrays and the cookie secret it
 * gives @fastify/cookie), with the suite's hardening on top through its public surface: the
 * `__Host-` cookie and its attributes, key rotation, an absolute lifetime and an idle timeout
 * enforced from data inside the sealed payload, tamper and expiry events, CSRF tokens, and an
 * optional server-side store.
 *
 * Hooks, in the order they run:
 * - @fastify/cookie's and @fastify/secure-session's onRequest parse the cookies and open the session
 *   (through `decodeSecureSession`, which the suite puts a cache of opened cookies in front of:
 *   sessions/opened-cookies.ts);
 * - ours (registered after them) checks the lifetimes, classifies a cookie that gave no session
 *   (on that path only, through `decodeSecureSession`'s `log` argument), and puts a view of the
 *   session (or, with a store, the store session) on `request.session`;
 * - ours onSend (registered before theirs; through the aggregate, a step of its single onSend hook,
 *   plugins/hook-chain.ts) writes a changed session's cookie with one `reply.header` from
 *   precomputed attributes, sealed in @fastify/secure-session's format (sessions/seal.ts; from the
 *   session's own object when the cache of opened cookies made the session from it), and marks it
 *   unchanged; a response whose route called `session.options()` is left to
 *   @fastify/secure-session's own onSend, which writes it with those options.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { randomBytes } from 'node:crypto'
import { ConfigError } from '../errors.ts'
import { isProductionEnv, parseOptions } from '../schemas/common.ts'
import { effectiveCookieName, peerOnlyIssues, SESSION_KEY_BYTES, secureSessionSchema, type SecureSessionOptions } from '../schemas/secure-session.ts'
import { decodeCookieValue, sessionCookieWriter } from '../sessions/cookie.ts'
import { cookieView, CookieViewState, type PeerSession } from '../sessions/cookie-view.ts'
import {
  checkLifetime, classifyDecodeFailure, CREATED_KEY, epochSeconds, newSessionMaxAge, peerExpiry, sessionEnd,
  STORE_ID_KEY, WRITTEN_KEY, type LifetimePolicy, type SessionRejection
} from '../sessions/lifetimes.ts'
import { strictDecode } from '../sessions/cookie-format.ts'
import { cachedDecode, OPENED_COOKIES, OpenedCookies, type OpenedSession } from '../sessions/opened-cookies.ts'
import type { Sealed } from '../sessions/seal.ts'
import { openSessionStore, publicStoreError, sessionsControl, type SessionsControl } from '../sessions/redis-store.ts'
import { carriesOnly, storeIdOf, storeSession, type StoreSessionState } from '../sessions/store-session.ts'
import type { SessionStore } from '../sessions/store.ts'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.ts'
import { addSendStep } from './hook-chain.ts'

export type { SessionRejection } from '../sessions/lifetimes.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Server-side session control (registered by `secureSession`). */
    sessions: SessionsControl
  }

  interface FastifyContextConfig {
    /** `false` exempts this route from the CSRF check of `secureSession({ csrf: true })` (webhooks, APIs with their own auth). */
    csrf?: boolean
  }
}

/** Browsers keep a cookie's name and value up to about 4096 bytes; a longer one is dropped silently. @internal */
export const MAX_COOKIE_CHARS = 4096
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
/** Values kept in the sealed cookie rather than the store: @fastify/csrf-protection's secret. */
const COOKIE_KEYS: ReadonlySet<string> = new Set(['_csrf'])

const kState = Symbol('fastify-secure-https.session')
type SessionState = CookieViewState | StoreSessionState
interface WithState { [kState]: SessionState | null }
const stateOf = (request: FastifyRequest): SessionState | null => (request as unknown as WithState)[kState]
const setState = (request: FastifyRequest, state: SessionState): void => { (request as unknown as WithState)[kState] = state }
const peerSessionOf = (request: FastifyRequest): PeerSession => request.session as unknown as PeerSession
const setSession = (request: FastifyRequest, session: PeerSession): void => { request.session = session as unknown as FastifyRequest['session'] }

const noop = (): void => {}

const secureSessionPlugin: FastifyPluginAsync<SecureSessionOptions> = async function secureSessionPlugin (fastify: FastifyInstance, options) {
  const peerOnly = peerOnlyIssues(options)
  if (peerOnly.length > 0) throw new ConfigError(peerOnly.map((issue) => ({ path: issue.path.join('.') || '(root)', message: issue.message })), 'secureSession')
  const config = parseOptions(secureSessionSchema, { production: isProductionEnv(process.env.NODE_ENV), ...options }, 'secureSession')
  if (fastify.hasPlugin('@fastify/secure-session') || fastify.hasRequestDecorator('session')) {
    throw new Error('request.session already exists (is @fastify/session or @fastify/secure-session registered too?); secureSession registers @fastify/secure-session itself: remove the other registration')
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
  const policy: LifetimePolicy = { maxAge: config.maxAge, idleTimeout: config.idleTimeout }
  const writer = sessionCookieWriter(cookieName, { domain: config.domain, secure: config.secure, sameSite: config.sameSite })
  const store = await openSessionStore(config, fastify.log)
  const opened = new OpenedCookies(OPENED_COOKIES, MAX_COOKIE_CHARS)
  // Set when @fastify/secure-session is registered, with the binding both use (below); no request
  // is served before.
  let seal: (session: PeerSession, values?: Record<string, unknown> | null) => Sealed = () => { throw new Error('secureSession is not registered yet') }
  // The last session the cache of opened cookies made, and the object it made it from (both null
  // unless @fastify/secure-session keeps and writes to that object: peerKeepsValues). Our
  // onRequest takes them when that session is its request's, which it is unless something ran
  // between @fastify/secure-session's onRequest and ours; otherwise the seal copies with data().
  let keepsValues = false
  let lastMade: unknown = null
  let lastValues: Record<string, unknown> | null = null
  let openPayload: (value: string) => Record<string, unknown> | null = () => null
  const limitTampered = eventLimiter(60)
  const limitExpired = eventLimiter(60)
  let warnedPlainHttp = false

  // What decodeSecureSession logged while refusing a cookie: the only way it says why.
  let refusal: string | undefined
  const classifier = {
    level: 'debug',
    debug (message: unknown) { refusal = typeof message === 'string' ? message : undefined },
    trace: noop,
    info: noop,
    warn: noop,
    error: noop,
    fatal: noop,
    silent: noop,
    child () { return classifier }
  } as unknown as FastifyBaseLogger

  function report (request: FastifyRequest, rejection: SessionRejection, fields: Record<string, unknown>): void {
    const suppressed = (rejection.event === 'session.tampered' ? limitTampered : limitExpired)()
    if (suppressed === false) return unloggedSecurityEvent(rejection.event)
    // Never the cookie itself: it may be a valid session of someone else, replayed.
    const message = rejection.event === 'session.tampered'
      ? `session cookie rejected (${rejection.reason}); starting a fresh session`
      : `session expired (${rejection.reason}); starting a fresh session`
    securityEvent(request.log, rejection.event, { reason: rejection.reason, cookie: cookieName, suppressed, ...fields }, message)
  }

  /** Why a cookie that @fastify/secure-session opened without a creation time gave no session, or null when it is a valid cookie of @fastify/secure-session. */
  function refusalOf (value: string): SessionRejection | null {
    if (value.length === 0) return { event: 'session.tampered', reason: 'empty' }
    if (value.length > MAX_COOKIE_CHARS) return { event: 'session.tampered', reason: 'oversized' }
    refusal = undefined
    try {
      if (fastify.decodeSecureSession(value, classifier) !== null) return null
    } catch {
      // Valid crypto around a payload that is not a session object: only a key holder makes one.
      return { event: 'session.tampered', reason: 'invalid-payload' }
    }
    const rejection = classifyDecodeFailure(refusal)
    if (rejection.reason === 'replayed-past-expiry') return migratedExpiry(value) ?? rejection
    return rejection
  }

  /**
   * A cookie refused as past its expiry that @fastify/secure-session wrote (no creation time: an
   * app switching over) is an expired session, not a replay: the suite never gave it a Max-Age, so
   * a browser sending it did nothing wrong. Null for a cookie the suite wrote.
   */
  function migratedExpiry (value: string): SessionRejection | null {
    let payload = openPayload(value)
    if (payload === null && unsign !== undefined && value.includes('.')) {
      const unsigned = unsign(value)
      if (unsigned !== null) payload = openPayload(unsigned)
    }
    if (payload === null || payload[CREATED_KEY] !== undefined || typeof payload[WRITTEN_KEY] !== 'number') return null
    // Counted as created at its last write, as a migrated cookie that is still valid is.
    return { event: 'session.expired', reason: epochSeconds() >= payload[WRITTEN_KEY] + policy.maxAge ? 'max-age' : 'idle' }
  }

  /**
   * The times of the session the request's cookie opened, checked; null when the cookie gave no
   * session (reported, and to be expired in the browser).
   */
  function inspect (request: FastifyRequest, session: PeerSession, value: string, storeMode: boolean, values: Record<string, unknown> | null = null): { migrated: boolean } | null {
    // Read from the session's own object when the suite made it (what the peer's get() reads).
    const read: Record<string, unknown> = values ?? session
    let created = read[CREATED_KEY]
    let migrated = false
    if (created === undefined) {
      const rejection = refusalOf(value)
      if (rejection !== null) {
        report(request, rejection, { cookieLength: value.length })
        return null
      }
      // A cookie of @fastify/secure-session (an app switching over): no creation time, so its last
      // write stands in for it (the conservative choice) and is added with this response.
      created = read[WRITTEN_KEY]
      migrated = true
    }
    // A cookie of the other mode: data without an id in store mode (a cookie session, which logout
    // and revokeUser cannot end), or an id in cookie mode.
    const mismatch = storeMode ? storeIdOf(session) === null && !carriesOnly(session, COOKIE_KEYS) : session[STORE_ID_KEY] !== undefined
    if (mismatch) {
      report(request, { event: 'session.expired', reason: 'store-mismatch' }, { store: storeMode })
      return null
    }
    const verdict = checkLifetime(policy, created, read[WRITTEN_KEY], epochSeconds())
    if (!verdict.ok) {
      report(request, verdict.rejection, { expiredSecondsAgo: verdict.endedSecondsAgo })
      return null
    }
    if (migrated) session[CREATED_KEY] = created
    else if (verdict.renew) session.touch()
    return { migrated }
  }

  function warnIfPlainHttp (request: FastifyRequest): void {
    if (config.secure && !warnedPlainHttp && request.protocol === 'http') {
      warnedPlainHttp = true
      request.log.warn(`the session cookie "${cookieName}" is Secure but this request came over plain HTTP, so browsers will not store it; behind a TLS proxy set TRUST_PROXY so that the app sees HTTPS`)
    }
  }

  /**
   * Seals `session` and writes its cookie with the remaining lifetime as Max-Age: with one
   * `reply.header`, or with `reply.setCookie` when the route gave per-response options. Returns
   * false when nothing was written (too large for a cookie).
   */
  function writeCookie (request: FastifyRequest, reply: FastifyReply, session: PeerSession, cookieOptions: object | null, values: Record<string, unknown> | null = null): boolean {
    const now = epochSeconds()
    const read: Record<string, unknown> = values ?? session
    let created = read[CREATED_KEY]
    if (created === undefined) {
      session[CREATED_KEY] = now
      created = now
    }
    const maxAge = sessionEnd(policy, created as number, read[WRITTEN_KEY] as number) - now
    if (maxAge <= 0) {
      reply.header('set-cookie', writer.expired)
      return true
    }
    // @fastify/secure-session's format and key (sessions/seal.ts); the browser sends the value back
    // with its next request, opened then without decrypting.
    const sealed = seal(session, values)
    opened.remember(sealed)
    const encoded = sealed.encoded
    if (cookieName.length + 1 + encoded.length > MAX_COOKIE_CHARS) {
      request.log.error({ bytes: encoded.length, cookie: cookieName }, `the session is too large for a cookie (${encoded.length} bytes, browsers keep about ${MAX_COOKIE_CHARS}); the response does not update it. Keep less in the session, or use a server-side store (SESSION_STORE=redis)`)
      return false
    }
    warnIfPlainHttp(request)
    if (cookieOptions === null) reply.header('set-cookie', writer.line(encoded, maxAge))
    else reply.setCookie(cookieName, sealed.value, { ...writer.options(maxAge), ...cookieOptions })
    return true
  }

  /** onRequest, cookie mode (after @fastify/secure-session's): lifetimes, classification, the view. */
  function onRequestCookie (request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
    const inner = peerSessionOf(request)
    const state = new CookieViewState(inner, inner === lastMade ? lastValues : null)
    lastMade = null
    lastValues = null
    setState(request, state)
    setSession(request, cookieView(state))
    const value = request.cookies[cookieName]
    if (value === undefined) state.pristine = true
    else if (inspect(request, inner, value, false, state.values) === null) {
      const values = {}
      state.inner = fastify.createSecureSession(values) as unknown as PeerSession
      state.values = keepsValues ? values : null
      state.expireOld = true
    }
    done()
  }

  /** onSend, cookie mode (before @fastify/secure-session's, which then finds nothing left to do). */
  function onSendCookie (request: FastifyRequest, reply: FastifyReply): Error | undefined {
    const state = stateOf(request) as CookieViewState | null
    // No cookie came and the route asked nothing of the session that could change it.
    if (state === null || state.pristine) return undefined
    const session = state.inner
    if (!session.changed) {
      if (state.expireOld) reply.header('set-cookie', writer.expired)
    } else if (session.deleted) {
      // @fastify/secure-session expires the cookie, with the route's options if it gave any; when no
      // cookie came there is nothing to expire.
      if (!state.expireOld && request.cookies[cookieName] === undefined) session.changed = false
      else if (state.cookieOptions !== null) session.options(state.cookieOptions)
    } else {
      try {
        writeCookie(request, reply, session, state.cookieOptions, state.values)
      } catch (error) {
        // A value JSON cannot encode (a cycle, a BigInt): the route's bug, answered as a 500 once.
        session.changed = false
        request.log.error({ err: error }, 'the session could not be sealed (are its values JSON?); the response does not update it')
        return new Error('the session could not be saved')
      }
      session.changed = false
    }
    return undefined
  }

  /** onRequest, store mode: the cookie names the session; its values are loaded here (asynchronous). */
  async function onRequestStore (request: FastifyRequest): Promise<void> {
    const { session, state } = storeSession(peerSessionOf(request), {}, null, COOKIE_KEYS)
    setState(request, state)
    setSession(request, session)
    const value = request.cookies[cookieName]
    if (value === undefined) return
    const fresh = (): void => {
      state.cookie = fastify.createSecureSession({}) as unknown as PeerSession
      state.values = {}
      state.id = null
      state.expireOld = true
    }
    if (inspect(request, state.cookie, value, true) === null) {
      fresh()
      return
    }
    const id = storeIdOf(state.cookie)
    if (id === null) return
    let values
    try {
      values = await (store as SessionStore).get(id)
    } catch (error) {
      // Only the requests that use the session fail (503); /healthz and the like are still served.
      request.log.error({ err: error }, `session store: loading the session failed (${(error as Error).message}); a request that uses it gets 503 without these details`)
      state.unavailable = publicStoreError(request.id, error)
      return
    }
    if (values === null) {
      report(request, { event: 'session.expired', reason: 'not-in-store' }, {})
      fresh()
      // Ended lately (logout, regenerate(), revocation): the browser may hold by now the cookie of
      // the request that ended it (a login's, whose answer crossed this request); expiring this
      // one would delete that. A dead id's cookie is harmless: every request finds nothing.
      if (store?.ended !== undefined) {
        try {
          if (await store.ended(id)) state.expireOld = false
        } catch (error) {
          request.log.warn({ err: error }, `session store: could not tell whether an unknown session was ended lately (${(error as Error).message}); its cookie is expired`)
        }
      }
      return
    }
    state.values = values
    state.id = id
  }

  /** onSend, store mode: the store first, then the cookie; a store failure is a generic 503 and no cookie. */
  async function onSendStore (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const state = stateOf(request) as StoreSessionState | null
    if (state === null || state.handled) return
    state.handled = true
    if (state.unavailable !== null) return
    const cookie = state.cookie
    if (!state.valuesChanged && !state.deleted && !cookie.changed) {
      if (state.expireOld) reply.header('set-cookie', writer.expired)
      return
    }
    const s = store as SessionStore
    try {
      for (const id of state.staleIds) await s.destroy(id)
      if (state.deleted) {
        if (state.id !== null) await s.destroy(state.id)
        reply.header('set-cookie', writer.expired)
        return
      }
      const now = epochSeconds()
      if (cookie[CREATED_KEY] === undefined) cookie[CREATED_KEY] = now
      // Nothing is stored for a session that holds nothing of its own (an anonymous visitor with a
      // CSRF secret, which stays in the cookie).
      let created = false
      if (state.id === null && Object.keys(state.values).length > 0) {
        state.id = randomBytes(32).toString('base64url')
        cookie[STORE_ID_KEY] = state.id
        created = true
      }
      const ttl = sessionEnd(policy, cookie[CREATED_KEY] as number, cookie[WRITTEN_KEY] as number) - now
      if (ttl <= 0) {
        reply.header('set-cookie', writer.expired)
        return
      }
      if (state.id !== null) {
        // A loaded id is written only while it still exists: a logout or revocation that happened
        // while this request ran is not undone (SessionStore.set's `existing`).
        let written: boolean | void = true
        if (state.valuesChanged || s.touch === undefined) written = await s.set(state.id, state.values, ttl, { existing: !created })
        else if (cookie.changed) written = await s.touch(state.id, ttl)
        // Ended meanwhile: no cookie either. It would name a dead id and, arriving after the
        // response of the request that ended it (a login's regenerate()), replace that one's cookie.
        if (written === false) return
      }
    } catch (error) {
      request.log.error({ err: error }, `session store: saving the session failed (${(error as Error).message}); the client gets 503 without these details and no cookie`)
      // Also when this response was an error reply already (a 400 whose session write failed): the
      // error handler keeps a status of 400 or more, and the session was not saved.
      reply.code(503)
      throw publicStoreError(request.id, error)
    }
    if (cookie.changed) writeCookie(request, reply, cookie, state.cookieOptions)
  }

  // Our onSend runs before @fastify/secure-session's (hooks run in the order they are added), our
  // onRequest after @fastify/cookie's and @fastify/secure-session's.
  fastify.decorateRequest(kState, null)
  // Through the aggregate, the cookie step runs in its onSend hook, added before any of the suite's plugins.
  if (store === undefined) addSendStep(fastify, options, 'onSendCookie', onSendCookie)
  else fastify.addHook('onSend', onSendStore)

  // Registered in the app's context under its own name: hasPlugin('@fastify/secure-session') is
  // true, plugins that declare it in `dependencies` load, its decorators exist app-wide, and it
  // registers @fastify/cookie with the secret it derives from the key (reply.signCookie) unless the
  // app registered @fastify/cookie itself, exactly as for an app that registers it directly.
  // Loaded here, with the libsodium binding it brings: an app with `secureSession: false` never loads either.
  const [{ default: fastifySecureSession }, { sessionOpener, sessionSealer }, { fastifyCookie: { parse: parseCookieHeader } }] =
    await Promise.all([import('@fastify/secure-session'), import('../sessions/seal.ts'), import('@fastify/cookie')])
  seal = sessionSealer(keys[0] as Buffer)
  openPayload = sessionOpener(keys)
  const appCookie = fastify.hasDecorator('parseCookie')
  await fastify.register(fastifySecureSession, {
    key: keys,
    cookieName,
    expiry: peerExpiry(policy),
    cookie: writer.options(newSessionMaxAge(policy))
  })
  // @fastify/cookie's onRequest parses the Cookie header through this decorator, looked up on each
  // request. Registered by @fastify/secure-session, it parses with cookie@2's defaults: the same
  // parser with a decoder that gives the same values and skips decodeURIComponent for the session
  // cookie's one `%3B` (sessions/cookie.ts). One the app registered keeps its own parseOptions.
  if (!appCookie && typeof parseCookieHeader === 'function') {
    const parseOptions = { decode: decodeCookieValue }
    fastify.parseCookie = (header: string) => parseCookieHeader(header, parseOptions)
  }
  // @fastify/secure-session's onRequest opens the cookie through this decorator, looked up on each
  // request: wrapped, the same cookie is decrypted once, not on every request (the decorator keeps
  // its signature and results for the app's own calls too).
  type Session = ReturnType<typeof fastify.createSecureSession> & OpenedSession
  // In front of it, the format check (sessions/cookie-format.ts): only a canonical spelling of a
  // sealed cookie is opened, and one an app signed with `cookie: { signed: true }` is unsigned first.
  const unsignCookie = fastify.hasDecorator('unsignCookie') ? fastify.unsignCookie.bind(fastify) : undefined
  const unsign = unsignCookie === undefined
    ? undefined
    : (value: string): string | null => {
        const result = unsignCookie(value)
        return result.valid ? result.value : null
      }
  keepsValues = peerKeepsValues((data) => fastify.createSecureSession(data) as unknown as PeerSession)
  fastify.decodeSecureSession = cachedDecode<Session, FastifyBaseLogger>(
    strictDecode(fastify.decodeSecureSession as (cookie: string, log?: FastifyBaseLogger, sessionName?: string) => Session | null, 'session', unsign),
    (data) => {
      const session = fastify.createSecureSession(data) as Session
      if (keepsValues) {
        lastMade = session
        lastValues = data
      }
      return session
    },
    opened,
    peerExpiry(policy),
    'session'
  ) as typeof fastify.decodeSecureSession

  if (store === undefined) {
    fastify.addHook('onRequest', onRequestCookie)
  } else {
    fastify.addHook('onRequest', onRequestStore)
    fastify.addHook('onClose', async () => { await store.close?.() })
  }
  if (!fastify.hasDecorator('sessions')) fastify.decorate('sessions', sessionsControl(store, fastify.log))

  if (config.csrf) {
    if (!fastify.hasPlugin('@fastify/csrf-protection')) {
      // Its '@fastify/secure-session' mode keeps the secret with request.session.get/set.
      // Loaded with SESSION_CSRF only.
      const { default: fastifyCsrfProtection } = await import('@fastify/csrf-protection')
      await fastify.register(fastifyCsrfProtection, { sessionPlugin: '@fastify/secure-session' })
    }
    const protect = fastify.csrfProtection.bind(fastify)
    // A refused token is a security event like a refused cross-site request (docs/observability.md):
    // @fastify/csrf-protection answers with its error and logs nothing of it. Read where the error
    // is handled, so that the app's own calls of fastify.csrfProtection count too.
    const limitCsrf = eventLimiter(60)
    fastify.addHook('onError', async (request, _reply, error) => {
      const code = (error as { code?: unknown }).code
      if (code !== 'FST_CSRF_INVALID_TOKEN' && code !== 'FST_CSRF_MISSING_SECRET') return
      const suppressed = limitCsrf()
      if (suppressed === false) return unloggedSecurityEvent('csrf.rejected')
      const reason = code === 'FST_CSRF_INVALID_TOKEN' ? 'invalid-token' : 'missing-secret'
      securityEvent(request.log, 'csrf.rejected', { reason, method: request.method, remoteAddress: request.raw.socket?.remoteAddress, suppressed },
        `refused a ${request.method} without a valid CSRF token (${reason}): a forged request, or a form older than its session`)
    })
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
 * Whether the sessions `create` (@fastify/secure-session's `createSecureSession`) makes keep the
 * very object they are made from and write `set()`, `touch()` and `regenerate()` to it, so that it
 * can be sealed as it is: what @fastify/secure-session 8 does, checked once at start rather than
 * assumed, so that a version that copies is sealed through `data()` as before. @internal
 */
export function peerKeepsValues (create: (data: Record<string, unknown>) => PeerSession): boolean {
  const values: Record<string, unknown> = { kept: 1, dropped: 2 }
  const session = create(values)
  session.set('added', 3)
  session.regenerate(['kept', 'added'])
  session.set('later', 4)
  const copy = session.data()
  const keys = Object.keys(values)
  return values.kept === 1 && values.added === 3 && values.later === 4 && values.__ts === session.get('__ts') && keys.length === 4 &&
    copy !== undefined && Object.keys(copy).length === 3 && keys.every((key) => key === '__ts' || copy[key] === values[key])
}

/**
 * Sessions on @fastify/secure-session with hardened defaults (`__Host-session`, Secure, HttpOnly,
 * SameSite=Lax), key rotation, payload-enforced lifetimes, tamper events, optional CSRF tokens
 * and an optional server-side store.
 */
export const secureSession = fp(secureSessionPlugin, { fastify: '5.x', name: 'fastify-secure-https/secure-session' })
export default secureSession
