/**
 * One storage interface behind every piece of shared certificate state, in certmagic's shape: Store,
 * Load, Delete, Exists, List, Stat, Lock, Unlock. The filesystem (TLS_DIR) and Redis implement it,
 * and an app can pass its own (Consul, S3, a database) in code; the ACME engine never knows which it
 * has.
 *
 * Keys are `/`-separated paths of plain segments (`acme/<directory>/certificates/example.com/cert.pem`),
 * checked before any implementation sees them, so that a key can never name a file outside TLS_DIR
 * or another Redis key space.
 *
 * Locks are leases: granted for a time (`ttl`) and kept alive by their holder while it works. A holder
 * that dies or pauses (a stopped VM, a long GC) loses the lease when it expires, and another instance
 * takes over. Work done under a lost lease must not be written: `store(key, value, { guard: lease })`
 * writes only while the lease is still held (atomically in Redis; by a re-check just before the write
 * on the filesystem), and `lease.signal` aborts as soon as a renewal finds the lease gone.
 *
 * Knows nothing of Fastify.
 */
import { ERR_STORAGE } from '../errors.ts'

/** What `stat()` tells about a key. */
export interface KeyInfo {
  key: string
  /** When the value was last written. */
  modified: Date
  /** Length of the stored value (for Redis: as stored, sealed). */
  size: number
  /** True for a value, false for a folder-like prefix of other keys. */
  terminal: boolean
}

/** A lock held by this process. */
export interface Lease {
  /** The lock's name. */
  readonly name: string
  /** Unique to this grant: only its holder can renew or release it. */
  readonly token: string
  /**
   * A number that grows with every grant of this lock (a fencing token): a write carrying an older
   * fence than the last grant's comes from a holder that lost its lease.
   */
  readonly fence: number
  /** Aborted when a renewal finds that the lease was lost (expired and taken, or deleted). */
  readonly signal: AbortSignal
}

/** Who holds a lock that could not be taken. */
export interface LockHolder {
  /** `pid@host` of the holder, as it wrote it. */
  owner: string
  /** When it took the lock. */
  since: Date
  /** When the lease runs out unless its holder renews it; null when unknown. */
  expires: Date | null
}

/** Options of `lock()`. */
export interface LockOptions {
  /** Lifetime of the lease in ms; the holder renews it every third of that. Default 60 s. */
  ttl?: number
}

/** Options of `store()`. */
export interface StoreOptions {
  /** Write only while this lease is still held; otherwise reject with ERR_SECURE_HTTPS_LOCK_LOST. */
  guard?: Lease
}

/** What an implementation reports about itself (outages, recoveries). */
export type StorageEvent =
  | { type: 'down', where: string, reason: string }
  | { type: 'up', where: string, downMs: number }

/** The storage interface. */
export interface Storage {
  /** Where the data lives, for logs: `file: /var/lib/app/.secure-https` or `redis: 10.0.0.5:6379 (secure-https:tls:)`. */
  readonly description: string
  /** Writes a value (replacing any), atomically: a reader sees the old or the new value, never a mix. */
  store (key: string, value: string, options?: StoreOptions): Promise<void>
  /** The value, or null when there is none. */
  load (key: string): Promise<string | null>
  /** Removes a value; removing a missing one is not an error. */
  delete (key: string): Promise<void>
  exists (key: string): Promise<boolean>
  /** Keys directly under `prefix` (or every key below it, with `recursive`), sorted. */
  list (prefix: string, recursive?: boolean): Promise<string[]>
  /** Facts about a key, or null when there is none. */
  stat (key: string): Promise<KeyInfo | null>
  /** Takes the lock if it is free (or its lease ran out), else says who holds it. Never waits. */
  lock (name: string, options?: LockOptions): Promise<Lease | LockHolder>
  /** Releases a lease (only if it is still this grant's); stops its renewals. */
  unlock (lease: Lease): Promise<void>
  /**
   * Calls `listener` with the key of each value that another instance stores, as it happens
   * (Redis pub/sub). Optional: without it, readers poll. Returns a function that stops listening.
   */
  watch? (listener: (key: string) => void): () => void
  /** Releases connections and timers; leases still held are released. */
  close (): Promise<void>
}

/** True when a lock attempt returned a lease rather than its holder. */
export function isLease (value: Lease | LockHolder): value is Lease {
  return typeof (value as Partial<Lease>).token === 'string'
}

/** True for an object that implements `Storage` (a user's own, passed in code). */
export function isStorage (value: unknown): value is Storage {
  if (value === null || typeof value !== 'object') return false
  const candidate = value as Record<string, unknown>
  return ['store', 'load', 'delete', 'exists', 'list', 'stat', 'lock', 'unlock', 'close'].every((name) => typeof candidate[name] === 'function')
}

/**
 * A key: `/`-separated segments, each starting with a letter, digit, `_` or `-` (the base64url
 * alphabet: ACME challenge tokens are keys, and one in 32 of them starts with `-`), then letters,
 * digits, `.`, `_`, `-` (so no segment is `.` or `..`, and none is empty). Segments cannot hold
 * `/`, so the pattern never backtracks across them: linear in the key's length.
 */
const KEY = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,254})*$/
const MAX_KEY = 1024

/** Why a key is not acceptable, or null when it is. Linear in the key's length. @internal */
export function keyProblem (key: string): string | null {
  if (typeof key !== 'string' || key.length === 0) return 'a storage key must be a non-empty string'
  if (key.length > MAX_KEY) return `a storage key is at most ${MAX_KEY} characters (got ${key.length})`
  if (KEY.test(key)) return null
  return `storage key ${JSON.stringify(key.slice(0, 80))}: every segment must start with a letter, digit, _ or - and hold only letters, digits, ".", "_" and "-"`
}

/** Throws ERR_SECURE_HTTPS_STORAGE when the key is not acceptable. @internal */
export function assertKey (key: string): void {
  const problem = keyProblem(key)
  if (problem !== null) throw new ERR_STORAGE(problem)
}

/** A prefix for `list()`: a key, or the empty string for the root. @internal */
export function assertPrefix (prefix: string): void {
  if (prefix !== '') assertKey(prefix)
}

/** `pid@host` of this process, as lock holders are named. @internal */
export function ownerName (pid: number, host: string): string {
  return `${pid}@${host}`
}

/** The default lease lifetime, in ms. */
export const DEFAULT_LOCK_TTL = 60_000
