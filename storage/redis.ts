/**
 * The Redis implementation of `Storage` (TLS_STORAGE=redis, REDIS_URL): the certificate state of a
 * fleet in the Redis it already runs for sessions, under its own prefix.
 *
 * Layout, under `prefix` (default `secure-https:tls:`):
 * - `v:<key>` a hash `{ v: sealed value, m: ms of the write }`; values are sealed (AES-256-GCM,
 *   see seal.ts) with TLS_STORAGE_KEYS, so private keys are not in clear in Redis and nothing
 *   written there by anyone else is served;
 * - `index` a sorted set of every key (score 0, ordered by name), for `list()` without SCAN;
 * - `lock:<name>` a lease: `SET NX PX` holding `{ token, owner, since, fence }`, renewed by its
 *   holder every third of its lifetime, released only by the token that took it;
 * - `fence:<name>` the lock's fencing counter, incremented at every grant;
 * - channel `changes`: the key of every value stored, for the other instances (`watch()`).
 *
 * Every write is one Lua script, so a guarded write checks the lease and writes in one step: a
 * holder paused past its lease (a VM stopped, a long GC) cannot overwrite what the next holder
 * stored. Commands are not queued while Redis is away: they fail at once with
 * ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE, the client reconnects in the background, and an outage and
 * its end are reported once each through `onEvent`.
 *
 * Loaded only with TLS_STORAGE=redis: ioredis is an optional dependency (see optional.ts).
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Redis } from 'ioredis'
import { ERR_LOCK_LOST, ERR_STORAGE_UNAVAILABLE } from '../errors.ts'
import { importOptional } from '../optional.ts'
import { deriveSealKeys, open, seal } from './seal.ts'
import { failFastOptions, redisReady, trackRedisHealth } from './redis-ready.ts'
import { assertKey, assertPrefix, DEFAULT_LOCK_TTL, ownerName, type KeyInfo, type Lease, type LockHolder, type LockOptions, type Storage, type StorageEvent, type StoreOptions } from './storage.ts'

/** Options of `redisStorage`. */
export interface RedisStorageOptions {
  /** `redis://[:password@]host:port[/db]`, or `rediss://` for TLS (REDIS_URL). Ignored with `client`. */
  url?: string
  /** A client of your own (Sentinel, TLS options...); `close()` leaves it open. */
  client?: Redis
  /** Prefix of every key (TLS_REDIS_PREFIX). Default `secure-https:tls:`. */
  prefix?: string
  /** Secrets the values are sealed with, 32 bytes each, newest first (TLS_STORAGE_KEYS). */
  keys: readonly Buffer[]
  /** Milliseconds a command may take. Default 2000. */
  commandTimeout?: number
  /** Outages and recoveries, once each. */
  onEvent?: (event: StorageEvent) => void
}

/** The Redis storage, with what an operator needs beyond `Storage`. */
export interface RedisStorage extends Storage {
  /** The ioredis client (health checks). */
  readonly client: Redis
  /** Resolves once connected, or rejects after `commandTimeout` (the client keeps retrying). */
  ready (): Promise<void>
}

// KEYS: value, index, lock. ARGV: sealed value, ms, key, channel, guard token ('' = none).
const STORE_SCRIPT = `
if ARGV[5] ~= '' then
  local held = redis.call('GET', KEYS[3])
  if not held then return 0 end
  local ok, lease = pcall(cjson.decode, held)
  if not ok or lease.token ~= ARGV[5] then return 0 end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'm', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[3])
return 1
`

// KEYS: value, index. ARGV: key.
const DELETE_SCRIPT = `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`

// KEYS: lock, fence. ARGV: token, owner, since, ttl ms.
const LOCK_SCRIPT = `
local held = redis.call('GET', KEYS[1])
if held then return {0, held, redis.call('PTTL', KEYS[1])} end
local fence = redis.call('INCR', KEYS[2])
local lease = cjson.encode({ token = ARGV[1], owner = ARGV[2], since = ARGV[3], fence = fence })
redis.call('SET', KEYS[1], lease, 'PX', ARGV[4])
return {1, lease, fence}
`

// KEYS: lock. ARGV: token, ttl ms ('' to release).
const LEASE_SCRIPT = `
local held = redis.call('GET', KEYS[1])
if not held then return 0 end
local ok, lease = pcall(cjson.decode, held)
if not ok or lease.token ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`

type ScriptClient = Redis & {
  storageStore (value: string, index: string, lock: string, sealed: string, ms: string, key: string, channel: string, token: string): Promise<number>
  storageDelete (value: string, index: string, key: string): Promise<number>
  storageLock (lock: string, fence: string, token: string, owner: string, since: string, ttl: string): Promise<[number, string, number]>
  storageLease (lock: string, token: string, ttl: string): Promise<number>
}

interface RedisLease extends Lease {
  timer: NodeJS.Timeout
  controller: AbortController
  /** The lease surely lasts until then (the last renewal that succeeded, plus the ttl). */
  validUntil: number
}

function where (client: Redis): string {
  const { host, port, path } = client.options
  return path !== undefined && path !== null ? String(path) : `${host ?? 'localhost'}:${port ?? 6379}`
}

/** The lexicographic upper bound of every string that starts with `prefix`. */
const ABOVE = '\u{10FFFF}'

/**
 * Opens the Redis storage (loads ioredis). Fails only when ioredis is missing or the options are
 * wrong; a Redis that is down is reported through `onEvent` and reconnected in the background.
 */
export async function redisStorage (options: RedisStorageOptions): Promise<RedisStorage> {
  const prefix = options.prefix ?? 'secure-https:tls:'
  const timeout = options.commandTimeout ?? 2000
  const sealKeys = deriveSealKeys(options.keys)
  if (sealKeys.length === 0) throw new ERR_STORAGE_UNAVAILABLE('TLS_STORAGE=redis needs TLS_STORAGE_KEYS to seal what it stores; make one with: openssl rand -base64 32')
  if (options.client === undefined && options.url === undefined) {
    throw new ERR_STORAGE_UNAVAILABLE('TLS_STORAGE=redis needs REDIS_URL (e.g. redis://127.0.0.1:6379) or a client')
  }
  const ownClient = options.client === undefined
  let client: ScriptClient
  if (options.client !== undefined) {
    client = options.client as ScriptClient
  } else {
    const { Redis: RedisClient } = await importOptional('ioredis', () => import('ioredis'))
    client = new RedisClient(options.url as string, failFastOptions(timeout)) as ScriptClient
  }
  client.defineCommand('storageStore', { numberOfKeys: 3, lua: STORE_SCRIPT })
  client.defineCommand('storageDelete', { numberOfKeys: 2, lua: DELETE_SCRIPT })
  client.defineCommand('storageLock', { numberOfKeys: 2, lua: LOCK_SCRIPT })
  client.defineCommand('storageLease', { numberOfKeys: 1, lua: LEASE_SCRIPT })
  const address = where(client)
  const valueKey = (key: string): string => `${prefix}v:${key}`
  const indexKey = `${prefix}index`
  const lockKey = (name: string): string => `${prefix}lock:${name}`
  const fenceKey = (name: string): string => `${prefix}fence:${name}`
  const channel = `${prefix}changes`
  const leases = new Set<RedisLease>()
  const watchers = new Set<(key: string) => void>()
  let subscriber: Redis | null = null

  const health = trackRedisHealth(client, {
    down: (reason) => options.onEvent?.({ type: 'down', where: address, reason }),
    up: (downMs) => options.onEvent?.({ type: 'up', where: address, downMs })
  })

  async function run<T> (what: string, command: () => Promise<T>): Promise<T> {
    if (client.status !== 'ready') {
      throw new ERR_STORAGE_UNAVAILABLE(`certificate storage unavailable: Redis at ${address} is ${client.status} (${health.reason()}) during ${what}; check that Redis is up and that REDIS_URL points to it`)
    }
    try {
      return await command()
    } catch (error) {
      throw Object.assign(new ERR_STORAGE_UNAVAILABLE(`certificate storage unavailable: Redis at ${address} failed during ${what} (${(error as Error).message}); check that Redis is up and that REDIS_URL points to it`), { cause: error })
    }
  }

  function startRenewal (name: string, token: string, fence: number, ttl: number): RedisLease {
    const controller = new AbortController()
    const lease: RedisLease = {
      name,
      token,
      fence,
      signal: controller.signal,
      controller,
      validUntil: Date.now() + ttl,
      timer: setInterval(() => {
        const started = Date.now()
        run('lock renewal', () => client.storageLease(lockKey(name), token, String(ttl))).then((renewed) => {
          if (renewed === 1) lease.validUntil = started + ttl
          else lost('its lease ran out and another instance may have taken it')
        }, () => {
          // Redis unreachable: the lease may still be alive there; it is lost once it surely ran out.
          if (Date.now() >= lease.validUntil) lost('Redis could not be reached to renew it before its lease ran out')
        })
      }, Math.max(50, Math.floor(ttl / 3)))
    }
    lease.timer.unref()
    function lost (why: string): void {
      clearInterval(lease.timer)
      leases.delete(lease)
      controller.abort(new ERR_LOCK_LOST(`the lock ${name} was lost: ${why}`))
    }
    leases.add(lease)
    return lease
  }

  async function list (listPrefix: string, recursive = false): Promise<string[]> {
    assertPrefix(listPrefix)
    const start = listPrefix === '' ? '-' : `[${listPrefix}/`
    const end = listPrefix === '' ? '+' : `(${listPrefix}/${ABOVE}`
    const keys = await run('list', () => client.zrangebylex(indexKey, start, end))
    if (recursive) return keys.sort()
    const skip = listPrefix === '' ? 0 : listPrefix.length + 1
    const direct = new Set<string>()
    for (const key of keys) {
      const slash = key.indexOf('/', skip)
      direct.add(slash === -1 ? key : key.slice(0, slash))
    }
    return [...direct].sort()
  }

  const storage: RedisStorage = {
    description: `redis: ${address} (${prefix})`,
    client,

    async ready () {
      await redisReady(client, timeout, () => new ERR_STORAGE_UNAVAILABLE(`certificate storage: Redis at ${address} did not answer within ${timeout} ms (${health.reason()}); check REDIS_URL`))
    },

    async store (key: string, value: string, storeOptions: StoreOptions = {}) {
      assertKey(key)
      const guard = storeOptions.guard
      const sealed = seal(sealKeys, key, value)
      const written = await run('store', () => client.storageStore(valueKey(key), indexKey, lockKey(guard?.name ?? key), sealed, String(Date.now()), key, channel, guard?.token ?? ''))
      if (written !== 1) throw new ERR_LOCK_LOST(`not writing ${key}: the lock ${guard?.name ?? ''} was lost (its lease ran out and another instance may hold it)`)
    },

    async load (key) {
      assertKey(key)
      const sealed = await run('load', () => client.hget(valueKey(key), 'v'))
      return sealed === null ? null : open(sealKeys, key, sealed)
    },

    async delete (key) {
      assertKey(key)
      await run('delete', () => client.storageDelete(valueKey(key), indexKey, key))
    },

    async exists (key) {
      assertKey(key)
      return await run('exists', () => client.exists(valueKey(key))) === 1
    },

    list,

    async stat (key): Promise<KeyInfo | null> {
      assertKey(key)
      const [modified, size] = await run('stat', () => Promise.all([client.hget(valueKey(key), 'm'), client.hstrlen(valueKey(key), 'v')]))
      if (modified !== null) return { key, modified: new Date(Number(modified)), size, terminal: true }
      const below = await list(key, true)
      return below.length === 0 ? null : { key, modified: new Date(0), size: 0, terminal: false }
    },

    async lock (name: string, lockOptions: LockOptions = {}): Promise<Lease | LockHolder> {
      assertKey(name)
      const ttl = Math.max(100, Math.round(lockOptions.ttl ?? DEFAULT_LOCK_TTL))
      const token = randomBytes(16).toString('hex')
      const now = Date.now()
      const [granted, held, third] = await run('lock', () => client.storageLock(lockKey(name), fenceKey(name), token, ownerName(process.pid, hostname()), new Date(now).toISOString(), String(ttl)))
      if (granted === 1) return startRenewal(name, token, Number(third), ttl)
      let owner = 'unknown'
      let since = new Date(now)
      try {
        const parsed = JSON.parse(held) as { owner?: unknown, since?: unknown }
        owner = String(parsed.owner)
        const date = new Date(String(parsed.since))
        if (!Number.isNaN(date.getTime())) since = date
      } catch {
        // Not ours to parse: the lock is still respected until it expires.
      }
      return { owner, since, expires: Number(third) > 0 ? new Date(now + Number(third)) : null }
    },

    async unlock (lease) {
      const own = [...leases].find((candidate) => candidate.token === lease.token)
      if (own !== undefined) {
        clearInterval(own.timer)
        leases.delete(own)
      }
      await run('unlock', () => client.storageLease(lockKey(lease.name), lease.token, ''))
    },

    watch (listener) {
      watchers.add(listener)
      if (subscriber === null) {
        // A subscribed connection can run nothing else. It subscribes on every connection, first and
        // after a reconnect, here, where a failure is caught: ioredis's own autoResubscribe sends the
        // SUBSCRIBE without a catch, so a connection closed before its reply (Redis restarting while
        // the storage closes) was an unhandled rejection, "Connection is closed.", seen in CI.
        const sub = client.duplicate({ enableOfflineQueue: true, autoResubscribe: false, lazyConnect: false })
        sub.on('error', () => {})
        sub.on('ready', () => { sub.subscribe(channel).catch(() => {}) })
        sub.on('message', (from: string, key: string) => {
          if (from !== channel) return
          for (const watcher of watchers) {
            try {
              watcher(key)
            } catch {
              // A failing listener must not stop the others.
            }
          }
        })
        subscriber = sub
      }
      return () => { watchers.delete(listener) }
    },

    async close () {
      health.mute()
      const held = [...leases]
      for (const lease of held) {
        clearInterval(lease.timer)
        leases.delete(lease)
      }
      if (client.status === 'ready') {
        await Promise.allSettled(held.map((lease) => client.storageLease(lockKey(lease.name), lease.token, '')))
      }
      health.stop()
      watchers.clear()
      if (subscriber !== null) {
        subscriber.disconnect()
        subscriber = null
      }
      if (!ownClient) return
      if (client.status === 'ready') await client.quit().catch(() => {})
      client.disconnect()
    }
  }
  return storage
}
