/**
 * Server-side session storage for the `secureSession` plugin. Without a store the cookie (sealed by
 * @fastify/secure-session) carries the session's values itself; with one, it carries only an opaque
 * random id and the session's times, and the values live in the store, so a session can be revoked
 * on the server and can hold more than a cookie's 4 KB. Pure: no Fastify.
 */

/** What a store keeps for one session: the values set with `request.session.set()`. */
export type StoredSessionData = Record<string, unknown>

/** How `SessionStore.set` is asked to write. */
export interface SessionSetOptions {
  /** The id was loaded by this request (not made for it): write only if the entry still exists. */
  existing?: boolean
}

/**
 * A server-side session store (Redis, a database, memory). Ids are 256-bit random strings made by
 * the plugin (base64url); stores treat them as opaque keys. Every method may reject: a rejection
 * fails the request (the plugin does not pretend a session is empty when its store is down).
 */
export interface SessionStore {
  /** The data stored under `id`, or null when there is none (never stored, destroyed or expired). */
  get (id: string): Promise<StoredSessionData | null>
  /**
   * Stores `data` under `id`, replacing what was there, to expire after `ttlSeconds` (at least 1).
   * With `existing: true` the id was loaded by this request: write only if the entry is still there,
   * so that a request in flight when the session was ended (logout, `regenerate()`, revocation)
   * cannot bring it back. A store that ignores the option lets such a request restore it.
   * Resolves with false when nothing was written because the entry was gone: the request's
   * response then writes no cookie, which would name a session that no longer exists (and replace
   * the cookie of a newer one, a login's, in the browser). Any other value counts as written.
   */
  set (id: string, data: StoredSessionData, ttlSeconds: number, options?: SessionSetOptions): Promise<boolean | void>
  /** Removes `id` (logout, regenerate). Removing an unknown id is not an error. */
  destroy (id: string): Promise<void>
  /**
   * Optional: extends the expiry of `id` without rewriting its data (sliding idle renewal). When
   * absent the plugin calls `set` with the current data instead. Resolves with false when the
   * entry was gone (nothing extended; as for `set`, the response then writes no cookie).
   */
  touch? (id: string, ttlSeconds: number): Promise<boolean | void>
  /**
   * Optional: true when `id` was ended lately by `destroy` (logout, `regenerate()`) or a revocation,
   * false when it expired or was never stored. Asked only for a cookie whose id `get` did not find:
   * when the session was ended lately, the browser may already hold the cookie that replaced it (a
   * login's, whose answer crossed this request), so this request's answer does not expire the
   * cookie. Without it, such a cookie is always expired.
   */
  ended? (id: string): Promise<boolean>
  /** Optional: releases connections; the plugin calls it when Fastify closes. */
  close? (): Promise<void>
}

/** How long a store remembers that a session was ended (`SessionStore.ended`): far longer than a request is in flight. @internal */
export const ENDED_MEMORY_MS = 10 * 60 * 1000

/** True when a value has the shape of a SessionStore. @internal */
export function isSessionStore (value: unknown): value is SessionStore {
  if (typeof value !== 'object' || value === null) return false
  const store = value as Record<string, unknown>
  return typeof store.get === 'function' && typeof store.set === 'function' && typeof store.destroy === 'function' &&
    (store.touch === undefined || typeof store.touch === 'function') &&
    (store.ended === undefined || typeof store.ended === 'function') &&
    (store.close === undefined || typeof store.close === 'function')
}

/** Options of `memorySessionStore`. */
export interface MemorySessionStoreOptions {
  /** Clock in milliseconds (tests fake it); default `Date.now`. */
  now?: () => number
}

/** The in-memory store, with a way to look inside for tests. */
export interface MemorySessionStore extends SessionStore {
  set (id: string, data: StoredSessionData, ttlSeconds: number, options?: SessionSetOptions): Promise<boolean>
  touch (id: string, ttlSeconds: number): Promise<boolean>
  ended (id: string): Promise<boolean>
  /** How many sessions are held (expired ones included until swept). */
  readonly size: number
}

/**
 * A store in this process's memory: for tests and single-process development only (sessions are
 * lost on restart and not shared between instances; use Redis or a database in production).
 */
export function memorySessionStore (options: MemorySessionStoreOptions = {}): MemorySessionStore {
  const now = options.now ?? Date.now
  const entries = new Map<string, { data: string, expires: number }>()
  // Ids destroyed lately, until when they are remembered (ended()).
  const ends = new Map<string, number>()
  let writes = 0
  const sweep = (): void => {
    const t = now()
    for (const [id, entry] of entries) if (entry.expires <= t) entries.delete(id)
    for (const [id, until] of ends) if (until <= t) ends.delete(id)
  }
  return {
    get size () { return entries.size },
    async get (id) {
      const entry = entries.get(id)
      if (entry === undefined) return null
      if (entry.expires <= now()) {
        entries.delete(id)
        return null
      }
      // A copy, as a networked store would give: the caller's changes do not leak into the store.
      return JSON.parse(entry.data) as StoredSessionData
    },
    async set (id, data, ttlSeconds, options) {
      if (options?.existing === true) {
        const entry = entries.get(id)
        // Ended (destroyed, or past its time) while the request that loaded it ran: not brought back.
        if (entry === undefined || entry.expires <= now()) return false
      }
      entries.set(id, { data: JSON.stringify(data), expires: now() + ttlSeconds * 1000 })
      // Amortised cleanup of abandoned sessions, so memory does not grow without bound.
      if (++writes % 1000 === 0) sweep()
      return true
    },
    async touch (id, ttlSeconds) {
      const entry = entries.get(id)
      // An entry past its time is gone (as get() says), even before the sweep removes it.
      if (entry === undefined || entry.expires <= now()) return false
      entry.expires = now() + ttlSeconds * 1000
      return true
    },
    async destroy (id) {
      const entry = entries.get(id)
      const t = now()
      // Remembered as the Redis store's tombstone is: not longer than the session had left.
      if (entry !== undefined && entry.expires > t) ends.set(id, t + Math.min(entry.expires - t, ENDED_MEMORY_MS))
      entries.delete(id)
    },
    async ended (id) {
      const until = ends.get(id)
      return until !== undefined && until > now()
    },
    async close () {
      entries.clear()
      ends.clear()
    }
  }
}
