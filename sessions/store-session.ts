/**
 * `request.session` in store mode: the same interface as @fastify/secure-session's session (get,
 * set, delete, touch, regenerate, data, options, property access, `changed`, `deleted`), with the
 * values in a server-side store and a small cookie, sealed by @fastify/secure-session, that
 * carries the session's id and times. Values named in `cookieKeys` (the CSRF secret) stay in the
 * cookie, so that an anonymous visitor who was given a CSRF token costs the store nothing: a
 * session is written to the store only once it holds a value of its own. Pure: no Fastify.
 */
import type { PeerSession } from './cookie-view.ts'
import { CREATED_KEY, STORE_ID_KEY, WRITTEN_KEY } from './lifetimes.ts'
import type { StoredSessionData } from './store.ts'

/** Per-request state of a store session, for the plugin that loads and saves it. @internal */
export interface StoreSessionState {
  /** @fastify/secure-session's session for the cookie (id, times, cookie-resident values). */
  cookie: PeerSession
  /** The values kept in the store. */
  values: StoredSessionData
  /** The id of the stored values, or null when nothing is stored yet. */
  id: string | null
  /** Ids to destroy when the response is sent (regenerate, delete). */
  staleIds: string[]
  /** The stored values changed. */
  valuesChanged: boolean
  deleted: boolean
  /** What the route passed to `options()`, if anything. */
  cookieOptions: object | null
  /** A cookie came that is no session: expire it unless a session is written. */
  expireOld: boolean
  /** The store could not load the session: every use of it throws this (a generic 503 error). */
  unavailable: Error | null
  /** The response's onSend has dealt with the session (it reads as unchanged from then on). */
  handled: boolean
}

/** The store-mode session. Internal state is private, so that no session value is shadowed. */
export class StoreSession {
  readonly #s: StoreSessionState
  readonly #cookieKeys: ReadonlySet<string>

  constructor (cookie: PeerSession, values: StoredSessionData, id: string | null, cookieKeys: ReadonlySet<string>) {
    this.#s = { cookie, values, id, staleIds: [], valuesChanged: false, deleted: false, cookieOptions: null, expireOld: false, unavailable: null, handled: false }
    this.#cookieKeys = cookieKeys
  }

  /** The plugin's access to the state. @internal */
  static state (session: StoreSession): StoreSessionState {
    return session.#s
  }

  #usable (): StoreSessionState {
    if (this.#s.unavailable !== null) throw this.#s.unavailable
    return this.#s
  }

  get (key: string): unknown {
    const s = this.#usable()
    // The reserved times are the cookie's (get('__created') as in cookie mode), as are cookieKeys.
    if (this.#cookieKeys.has(key) || key === CREATED_KEY || key === WRITTEN_KEY) return s.cookie.get(key)
    return Object.hasOwn(s.values, key) ? s.values[key] : undefined
  }

  set (key: string, value: unknown): void {
    const s = this.#usable()
    if (this.#cookieKeys.has(key)) {
      s.cookie.set(key, value)
      return
    }
    if (value === undefined) delete s.values[key]
    else s.values[key] = value
    s.valuesChanged = true
  }

  delete (): void {
    this.#usable().deleted = true
  }

  touch (): void {
    this.#usable().cookie.touch()
  }

  /** A new session: a new id (the old one destroyed), only the values named in `keep` kept. */
  regenerate (keep?: string[]): void {
    const s = this.#usable()
    const kept: StoredSessionData = {}
    if (Array.isArray(keep)) for (const key of keep) if (Object.hasOwn(s.values, key)) kept[key] = s.values[key]
    s.values = kept
    if (s.id !== null) s.staleIds.push(s.id)
    s.id = null
    s.valuesChanged = true
    // @fastify/secure-session's regenerate keeps only __ts and the listed values: the id and the
    // creation time go with the rest.
    s.cookie.regenerate(Array.isArray(keep) ? keep.filter((key) => this.#cookieKeys.has(key)) : [])
  }

  data (): StoredSessionData {
    const s = this.#usable()
    const copy: StoredSessionData = { ...s.values }
    for (const key of this.#cookieKeys) {
      const value = s.cookie.get(key)
      if (value !== undefined) copy[key] = value
    }
    return copy
  }

  options (opts: object): void {
    this.#usable().cookieOptions = opts
  }

  get changed (): boolean {
    const s = this.#s
    return !s.handled && s.unavailable === null && (s.valuesChanged || s.deleted || s.cookie.changed)
  }

  set changed (value: boolean) {
    const s = this.#s
    s.cookie.changed = value
    if (!value) s.valuesChanged = false
  }

  get deleted (): boolean {
    return this.#s.deleted
  }

  set deleted (value: boolean) {
    this.#s.deleted = value
  }
}

const storeSessionHandler: ProxyHandler<StoreSession> = {
  get (target, prop) {
    if (typeof prop === 'symbol' || prop in target) {
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
    return target.get(prop)
  },
  set (target, prop, value) {
    if (typeof prop === 'symbol' || prop in target) return Reflect.set(target, prop, value, target)
    target.set(prop, value)
    return true
  }
}

/** A store session with property access (`request.session.user`), as @fastify/secure-session's. @internal */
export function storeSession (cookie: PeerSession, values: StoredSessionData, id: string | null, cookieKeys: ReadonlySet<string>): { session: PeerSession, state: StoreSessionState } {
  const target = new StoreSession(cookie, values, id, cookieKeys)
  return { session: new Proxy(target, storeSessionHandler) as unknown as PeerSession, state: StoreSession.state(target) }
}

/** The cookie's id of the stored session, if it carries one. @internal */
export function storeIdOf (cookie: PeerSession): string | null {
  const id = cookie[STORE_ID_KEY]
  return typeof id === 'string' && id.length > 0 ? id : null
}

/** True when the cookie carries no value but the reserved ones and `cookieKeys`. @internal */
export function carriesOnly (cookie: PeerSession, cookieKeys: ReadonlySet<string>): boolean {
  const data = cookie.data() ?? {}
  for (const key of Object.keys(data)) {
    if (key !== CREATED_KEY && key !== STORE_ID_KEY && !cookieKeys.has(key)) return false
  }
  return true
}
