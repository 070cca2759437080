/**
 * The Redis implementation of `SessionStore` (ioredis): server-side sessions shared by every
 * instance of a fleet, expiring with the session, revocable one by one or all of a user's at once.
 *
 * Layout, under `prefix` (default `secure-https:`):
 * - `s:<id>`  hash `{ d: JSON data, u: owner }`, TTL = the session's remaining lifetime;
 * - `u:<owner>` the owner's session ids (for `revokeUser`), a sorted set scored by expiry so that
 *   ended ones are dropped cheaply however many sessions one user has; TTL = its longest session;
 * - `r:<id>`  tombstone of a destroyed or revoked session, so that a request still in flight when
 *   the session ended cannot write it back; it lives 10 minutes (or what the session had left, if
 *   less): only a request that loaded the session before it ended can write to its id. `ended()`
 *   reads it.
 *
 * Writes are Lua scripts (atomic), so the store needs a single Redis primary (with replicas or
 * Sentinel if you like); Redis Cluster is not supported, as the scripts derive keys at run time.
 */
import type { Redis } from 'ioredis'
import { createRequire } from 'node:module'
import { timedStoreCall } from '../diagnostics.ts'
import { ERR_SESSION_STORE_UNAVAILABLE } from '../errors.ts'
import { requireOptional } from '../optional.ts'
import { failFastOptions, redisReady, trackRedisHealth } from '../storage/redis-ready.ts'
import { ENDED_MEMORY_MS, type SessionSetOptions, type SessionStore, type StoredSessionData } from './store.ts'

/** `fastify.sessions`: what an operator (an admin route, a script) can do to sessions. */
export interface SessionsControl {
  /** The server-side store in use, or null with cookie sessions (SESSION_STORE=cookie). */
  readonly store: SessionStore | null
  /**
   * Ends every session of `user` (the session's `user` value) on every instance; resolves with how
   * many. Needs a store that indexes sessions by user (SESSION_STORE=redis); cookie sessions cannot
   * be revoked, so it rejects there.
   */
  revokeUser (user: string): Promise<number>
}

/** Where the store reports outages and recoveries (a Fastify or pino logger fits). */
export interface StoreLogger {
  error (fields: Record<string, unknown>, message: string): void
  warn (fields: Record<string, unknown>, message: string): void
  info (fields: Record<string, unknown>, message: string): void
}

/** Options of `redisSessionStore`. */
export interface RedisSessionStoreOptions {
  /** `redis://[:password@]host:port[/db]` or `rediss://` for TLS (env REDIS_URL). Ignored with `client`. */
  url?: string
  /** A client of your own (its options are yours; `close()` leaves it open). */
  client?: Redis
  /** Prefix of every key, to share a Redis with other data. Default `secure-https:`. */
  prefix?: string
  /** The session value that names its owner, for `revokeUser`. Default `user`. */
  userKey?: string
  /** Milliseconds a command may take before the request gets 503. Default 2000. */
  commandTimeout?: number
  /** Outages and recoveries are logged here (once per outage, not once per retry). */
  log?: StoreLogger
}

/** A `SessionStore` in Redis, plus what an operator needs. */
export interface RedisSessionStore extends SessionStore {
  /**
   * Ends every session of `user` (the value of `userKey` in the session) on every instance at
   * once; returns how many were ended. Requests of those sessions still in flight cannot write
   * them back.
   */
  revokeUser (user: string): Promise<number>
  /** Stores a session's data; false when nothing was written (an ended id: see `SessionStore.set`). */
  set (id: string, data: StoredSessionData, ttlSeconds: number, options?: SessionSetOptions): Promise<boolean>
  /** Extends a session's expiry without rewriting its data; an ended session stays ended (false). */
  touch (id: string, ttlSeconds: number): Promise<boolean>
  /** True while the tombstone of a destroyed or revoked session lasts (`SessionStore.ended`). */
  ended (id: string): Promise<boolean>
  /** Resolves once connected, or rejects after `commandTimeout` (the client keeps retrying). */
  ready (): Promise<void>
  /** The ioredis client (for health checks and metrics). */
  readonly client: Redis
  /** Stops listening to the client and closes it (unless it was given in `client`). */
  close (): Promise<void>
}

/** The store could not answer; the request that needed the session gets 503 (`ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE`). */
export const SessionStoreUnavailableError = ERR_SESSION_STORE_UNAVAILABLE

function unavailable (message: string, cause: unknown): Error {
  const error = new SessionStoreUnavailableError(message)
  error.cause = cause
  return error
}

// KEYS: session, tombstone, owner index. ARGV: data JSON, ttl s, id, owner ('' = none), owner-index
// prefix, '1' when the id was loaded by this request (then it is written only while it still exists:
// a session ended meanwhile, by logout or revokeUser, is not brought back).
// The owner index is a sorted set scored by expiry: ended entries are dropped by score, O(log n).
const SET_SCRIPT = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[1], 'u')
if old and old ~= '' and old ~= ARGV[4] then redis.call('ZREM', ARGV[5] .. old, ARGV[3]) end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'u', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then
  local now = tonumber(redis.call('TIME')[1])
  local ttl = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('TTL', KEYS[3]) < ttl then redis.call('EXPIRE', KEYS[3], ttl) end
end
return 1
`

// KEYS: session. ARGV: ttl s, id, owner-set prefix. Extends a session that still exists, data untouched.
const TOUCH_SCRIPT = `
if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
local u = redis.call('HGET', KEYS[1], 'u')
if u and u ~= '' then
  local now = tonumber(redis.call('TIME')[1])
  local ttl = tonumber(ARGV[1])
  local owners = ARGV[3] .. u
  redis.call('ZADD', owners, now + ttl, ARGV[2])
  if redis.call('TTL', owners) < ttl then redis.call('EXPIRE', owners, ttl) end
end
return 1
`

// KEYS: session, tombstone. ARGV: id, owner-set prefix, tombstone lifetime ms.
const DESTROY_SCRIPT = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  ttl = math.min(ttl, tonumber(ARGV[3]))
  local u = redis.call('HGET', KEYS[1], 'u')
  if u and u ~= '' then redis.call('ZREM', ARGV[2] .. u, ARGV[1]) end
  redis.call('SET', KEYS[2], '1', 'PX', ttl)
  redis.call('DEL', KEYS[1])
end
return 1
`

// KEYS: owner set. ARGV: session prefix, tombstone prefix, tombstone lifetime ms.
const REVOKE_SCRIPT = `
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local ttl = redis.call('PTTL', ARGV[1] .. id)
  if ttl > 0 then
    ttl = math.min(ttl, tonumber(ARGV[3]))
    redis.call('SET', ARGV[2] .. id, '1', 'PX', ttl)
    redis.call('DEL', ARGV[1] .. id)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n
`

/** How long an ended session's id stays refused: far longer than any request is in flight. */
const TOMBSTONE_MS = ENDED_MEMORY_MS

type ScriptClient = Redis & {
  sessionSet (session: string, tombstone: string, owners: string, data: string, ttl: number, id: string, owner: string, ownerPrefix: string, existing: string): Promise<number>
  sessionTouch (session: string, ttl: number, id: string, ownerPrefix: string): Promise<number>
  sessionDestroy (session: string, tombstone: string, id: string, ownerPrefix: string, tombstoneMs: number): Promise<number>
  sessionRevoke (owners: string, sessionPrefix: string, tombstonePrefix: string, tombstoneMs: number): Promise<number>
}

function where (client: Redis): string {
  const { host, port, path } = client.options
  return path !== undefined && path !== null ? String(path) : `${host ?? 'localhost'}:${port ?? 6379}`
}

/**
 * A Redis session store for `secureSession({ store })` (or SESSION_STORE=redis with REDIS_URL).
 * Commands are not queued while Redis is away: they fail at once with a 503 error, and the client
 * reconnects in the background (every 0.1 s to 2 s), so the app recovers by itself.
 */
export function redisSessionStore (options: RedisSessionStoreOptions = {}): RedisSessionStore {
  const prefix = options.prefix ?? 'secure-https:'
  const userKey = options.userKey ?? 'user'
  const timeout = options.commandTimeout ?? 2000
  const log = options.log
  const ownClient = options.client === undefined
  if (ownClient && options.url === undefined) {
    throw new Error('redisSessionStore needs a url (REDIS_URL, e.g. redis://127.0.0.1:6379) or a client')
  }
  // ioredis is an optional peer dependency, loaded only when a store is made without a client.
  const client = (options.client ?? new (requireOptional('ioredis', () => createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis)(options.url as string, failFastOptions(timeout))) as ScriptClient
  client.defineCommand('sessionSet', { numberOfKeys: 3, lua: SET_SCRIPT })
  client.defineCommand('sessionTouch', { numberOfKeys: 1, lua: TOUCH_SCRIPT })
  client.defineCommand('sessionDestroy', { numberOfKeys: 2, lua: DESTROY_SCRIPT })
  client.defineCommand('sessionRevoke', { numberOfKeys: 1, lua: REVOKE_SCRIPT })
  const address = where(client)
  const sessionKey = (id: string): string => `${prefix}s:${id}`
  const tombstoneKey = (id: string): string => `${prefix}r:${id}`
  const ownerKey = (owner: string): string => `${prefix}u:${owner}`

  const health = trackRedisHealth(client, {
    down: (reason) => log?.error({ redis: address, reason }, `session store: Redis at ${address} is unreachable (${reason}); reconnecting in the background. Requests that need a session get 503 until it is back; other requests are served`),
    up: (downMs) => log?.warn({ redis: address, downMs }, `session store: Redis at ${address} is back after ${downMs} ms; sessions work again`)
  })

  const run = <T>(what: string, command: () => Promise<T>): Promise<T> => timedStoreCall(what, () => call(what, command))
  async function call<T> (what: string, command: () => Promise<T>): Promise<T> {
    if (client.status !== 'ready') {
      throw new SessionStoreUnavailableError(`session store unavailable: Redis at ${address} is ${client.status} (${health.reason()}) during ${what}; the request needs its session and gets 503. Check that Redis is up and that REDIS_URL points to it`)
    }
    try {
      return await command()
    } catch (error) {
      throw unavailable(`session store unavailable: Redis at ${address} failed during ${what} (${(error as Error).message}); the request gets 503. Check that Redis is up and that REDIS_URL points to it`, error)
    }
  }

  const ownerOf = (data: StoredSessionData): string => {
    const value = data[userKey]
    return typeof value === 'string' || typeof value === 'number' ? String(value) : ''
  }

  return {
    client,
    async get (id) {
      const json = await run('get', () => client.hget(sessionKey(id), 'd'))
      return json === null ? null : JSON.parse(json) as StoredSessionData
    },
    async set (id, data, ttlSeconds, options) {
      const owner = ownerOf(data)
      const ttl = Math.max(1, Math.ceil(ttlSeconds))
      const existing = options?.existing === true ? '1' : '0'
      return await run('set', () => client.sessionSet(sessionKey(id), tombstoneKey(id), ownerKey(owner), JSON.stringify(data), ttl, id, owner, `${prefix}u:`, existing)) === 1
    },
    async touch (id, ttlSeconds) {
      const ttl = Math.max(1, Math.ceil(ttlSeconds))
      return await run('touch', () => client.sessionTouch(sessionKey(id), ttl, id, `${prefix}u:`)) === 1
    },
    async destroy (id) {
      await run('destroy', () => client.sessionDestroy(sessionKey(id), tombstoneKey(id), id, `${prefix}u:`, TOMBSTONE_MS))
    },
    async ended (id) {
      return await run('ended', () => client.exists(tombstoneKey(id))) === 1
    },
    async revokeUser (user) {
      return await run('revokeUser', () => client.sessionRevoke(ownerKey(user), `${prefix}s:`, `${prefix}r:`, TOMBSTONE_MS))
    },
    async ready () {
      await redisReady(client, timeout, () => new SessionStoreUnavailableError(`session store: Redis at ${address} did not answer within ${timeout} ms (${health.reason()}); check REDIS_URL`))
    },
    async close () {
      health.stop()
      if (!ownClient) return
      // quit() lets queued replies arrive; when Redis is away there is nothing to wait for.
      if (client.status === 'ready') await client.quit().catch(() => {})
      client.disconnect()
    }
  }
}

/** The session options this module reads (a subset of `SecureSessionConfig`). @internal */
export interface StoreChoice {
  store?: 'cookie' | 'redis' | SessionStore
  redisUrl?: string
}

/** Whether `choice` keeps sessions in the cookie itself (no store): the one test of it. @internal */
export function isCookieSession (choice: StoreChoice): boolean {
  return choice.store === undefined || choice.store === 'cookie'
}

/**
 * The store `secureSession` uses: none for cookie sessions, a Redis store for SESSION_STORE=redis,
 * or the caller's own. A Redis that is down at start is logged, not fatal: the instance serves what
 * needs no session and picks Redis up when it comes. @internal
 */
export async function openSessionStore (choice: StoreChoice, log: StoreLogger): Promise<SessionStore | undefined> {
  if (isCookieSession(choice)) return undefined
  if (typeof choice.store === 'object') return choice.store
  const store = redisSessionStore({ url: choice.redisUrl, log })
  await store.ready().catch(() => {
    // Already logged by the store, once, with the address and the reason.
  })
  return store
}

function canRevoke (store: SessionStore): store is SessionStore & Pick<RedisSessionStore, 'revokeUser'> {
  return typeof (store as Partial<RedisSessionStore>).revokeUser === 'function'
}

/**
 * The error a client sees when the session store fails: a generic message and the request id,
 * never the store's own text (its address, its state, NOREPLICAS, a timeout), which goes to the
 * log under the same request id. @internal
 */
export function publicStoreError (requestId: string | undefined, cause: unknown): Error {
  const error = new SessionStoreUnavailableError(`the session store is unavailable; try again shortly${requestId === undefined ? '' : ` (request id ${requestId})`}`)
  // Kept for the log (pino serialises `cause`), never for the reply: Fastify's error serialiser
  // sends only statusCode, code, error and message.
  Object.defineProperty(error, 'cause', { value: cause, enumerable: false, configurable: true, writable: true })
  return error
}

/** The `fastify.sessions` decorator for a store (or none). @internal */
export function sessionsControl (store: SessionStore | undefined, log: StoreLogger): SessionsControl {
  return {
    store: store ?? null,
    async revokeUser (user) {
      if (store === undefined) {
        throw new Error('fastify.sessions.revokeUser needs server-side sessions: cookie sessions cannot be revoked before they expire; set SESSION_STORE=redis and REDIS_URL (secureSession({ store: \'redis\', redisUrl }))')
      }
      if (!canRevoke(store)) {
        throw new Error('fastify.sessions.revokeUser needs a store with revokeUser(user) (the Redis store has one); this store cannot find a user\'s sessions')
      }
      try {
        return await store.revokeUser(user)
      } catch (error) {
        log.error({ err: error }, `fastify.sessions.revokeUser: the session store failed (${(error as Error).message})`)
        throw publicStoreError(undefined, error)
      }
    }
  }
}
