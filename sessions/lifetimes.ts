/**
 * Session lifetimes on top of @fastify/secure-session's payload. Pure: no Fastify, no I/O.
 *
 * @fastify/secure-session seals the session's values and one field of its own, `__ts` (seconds,
 * rewritten by every `set()` and `touch()`), and refuses a cookie once `__ts + expiry` has passed:
 * an idle timeout counted from the last write. The suite adds one reserved value, `__created`
 * (seconds, the session's creation), for the absolute lifetime; in store mode the cookie also
 * carries `__sid`, the id of the data in the store.
 */
import { NOT_SEALED_FORMAT } from './cookie-format.ts'

/** Reserved session value: when the session was created (seconds since the epoch). */
export const CREATED_KEY = '__created'
/** Reserved session value in store mode: the id of the session's data in the store. */
export const STORE_ID_KEY = '__sid'
/** @fastify/secure-session's own reserved value: the last write (seconds since the epoch). */
export const WRITTEN_KEY = '__ts'
/** Values that are the suite's or @fastify/secure-session's, not the app's. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set([CREATED_KEY, STORE_ID_KEY, WRITTEN_KEY])

/**
 * A cookie presented this long after the expiry its own Max-Age gave the browser was not sent by a
 * browser that obeyed it: it is a replay (a copied cookie), not an expiry.
 */
export const REPLAY_GRACE_SECONDS = 60

/** The lifetimes of a session, in seconds. */
export interface LifetimePolicy {
  /** Absolute lifetime, from creation. */
  maxAge: number
  /** Idle timeout, from the last write; 0 for none. */
  idleTimeout: number
}

/** Why a cookie gave no session. */
export type SessionRejection =
  | { event: 'session.tampered', reason: 'empty' | 'oversized' | 'malformed' | 'truncated' | 'bad-nonce' | 'decrypt-failed' | 'invalid-payload' | 'replayed-past-expiry' }
  | { event: 'session.expired', reason: 'max-age' | 'idle' | 'not-in-store' | 'store-mismatch' }

/** Seconds since the epoch, rounded as @fastify/secure-session rounds `__ts`. */
export function epochSeconds (ms: number = Date.now()): number {
  return Math.round(ms / 1000)
}

/**
 * The `expiry` given to @fastify/secure-session: the window a session may go unwritten (the idle
 * timeout, else the absolute lifetime), plus the replay grace, so that a cookie it refuses as
 * expired is one a browser would have dropped a minute before: a replay.
 */
export function peerExpiry (policy: LifetimePolicy): number {
  return (policy.idleTimeout > 0 ? Math.min(policy.idleTimeout, policy.maxAge) : policy.maxAge) + REPLAY_GRACE_SECONDS
}

/** Max-Age of the cookie of a session created now. */
export function newSessionMaxAge (policy: LifetimePolicy): number {
  return policy.idleTimeout > 0 ? Math.min(policy.idleTimeout, policy.maxAge) : policy.maxAge
}

/** When a session created at `created` and last written at `written` ends (seconds). */
export function sessionEnd (policy: LifetimePolicy, created: number, written: number): number {
  const absolute = created + policy.maxAge
  return policy.idleTimeout > 0 ? Math.min(absolute, written + policy.idleTimeout) : absolute
}

/** What a decoded session's times say. */
export type LifetimeVerdict =
  | { ok: true, /** Less than half the idle window is left: re-issue the cookie (sliding renewal). */ renew: boolean }
  | { ok: false, rejection: SessionRejection, /** Seconds since the session ended. */ endedSecondsAgo: number }

/**
 * Checks a decoded session's times at `now`. `created` and `written` are seconds; a value that is not
 * a finite number is no session we wrote (`invalid-payload`).
 */
export function checkLifetime (policy: LifetimePolicy, created: unknown, written: unknown, now: number): LifetimeVerdict {
  if (typeof created !== 'number' || typeof written !== 'number' || !Number.isFinite(created) || !Number.isFinite(written)) {
    return { ok: false, rejection: { event: 'session.tampered', reason: 'invalid-payload' }, endedSecondsAgo: 0 }
  }
  const end = sessionEnd(policy, created, written)
  if (now >= end) {
    if (now >= end + REPLAY_GRACE_SECONDS) {
      return { ok: false, rejection: { event: 'session.tampered', reason: 'replayed-past-expiry' }, endedSecondsAgo: now - end }
    }
    const reason = now >= created + policy.maxAge ? 'max-age' : 'idle'
    return { ok: false, rejection: { event: 'session.expired', reason }, endedSecondsAgo: now - end }
  }
  return { ok: true, renew: policy.idleTimeout > 0 && (now - written) * 2 >= policy.idleTimeout }
}

/**
 * Why @fastify/secure-session's `decodeSecureSession` gave no session, from the message it logged
 * (its `log` argument). Its expiry is `peerExpiry`, so an expired cookie it refuses is past the
 * replay grace.
 */
export function classifyDecodeFailure (message: string | undefined): SessionRejection {
  if (message === NOT_SEALED_FORMAT) return { event: 'session.tampered', reason: 'malformed' }
  if (message === undefined) return { event: 'session.tampered', reason: 'invalid-payload' }
  if (message.includes('expiry reached')) return { event: 'session.tampered', reason: 'replayed-past-expiry' }
  if (message.includes('unable to decrypt')) return { event: 'session.tampered', reason: 'decrypt-failed' }
  if (message.includes('not long enough')) return { event: 'session.tampered', reason: 'truncated' }
  if (message.includes('nonce')) return { event: 'session.tampered', reason: 'bad-nonce' }
  return { event: 'session.tampered', reason: 'malformed' }
}
