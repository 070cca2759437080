/**
 * The Redis storage (TLS_STORAGE=redis) against a real redis-server: the storage contract, values
 * sealed at rest (nothing in clear, nothing planted or moved is served, key rotation), a holder
 * paused past its lease, pub/sub to the other instances, and an outage and its end.
 */
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { loadConfig } from '../index.ts'
import { fileStorage } from '../storage/file.ts'
import { deriveSealKeys, open, seal } from '../storage/seal.ts'
import { redisStorage, type RedisStorage } from '../storage/redis.ts'
import { isLease, type StorageEvent } from '../storage/storage.ts'
import { acmeSource } from '../tls/acme-source.ts'
import { AcmeStore } from '../tls/acme-store.ts'
import { inspectCertificate } from '../tls/inspect.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'
import { tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { startRedis } from './helpers/redis.ts'
import { storageContract } from './helpers/storage-contract.ts'

const key = randomBytes(32)

t.test('sealing: round trip, tampering, moving, rotation (fuzzed)', async (t) => {
  const keys = deriveSealKeys([key])
  fc.assert(fc.property(fc.string({ maxLength: 2000 }), fc.string({ minLength: 1, maxLength: 100 }), (text, name) => open(keys, name, seal(keys, name, text)) === text))
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 200 }), fc.nat(), (text, at) => {
    const sealed = seal(keys, 'k', text)
    const parts = sealed.split('.')
    const body = Buffer.from(parts[3] as string, 'base64url')
    const i = at % body.length
    body[i] = (body[i] as number) ^ 0x01
    parts[3] = body.toString('base64url')
    try {
      open(keys, 'k', parts.join('.'))
      return false
    } catch (error) {
      return (error as { code?: string }).code === 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY'
    }
  }), { numRuns: 300 })
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (garbage) => {
    try {
      open(keys, 'k', garbage)
      return false
    } catch (error) {
      return (error as { code?: string }).code === 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY'
    }
  }), { numRuns: 1000 })
  t.throws(() => open(keys, 'acme/x/certificates/a/key.pem', seal(keys, 'acme/x/challenges/token', 'value')), { code: 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY' },
    'a value moved to another key is refused')
  const newer = deriveSealKeys([randomBytes(32), key])
  t.equal(open(newer, 'k', seal(keys, 'k', 'old')), 'old', 'a value sealed with the previous key opens once it is second')
  t.throws(() => open(deriveSealKeys([randomBytes(32)]), 'k', seal(keys, 'k', 'x')), /key this instance does not have/)
})

t.test('against redis-server', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const prefix = `t${randomBytes(3).toString('hex')}:`
  const opened: RedisStorage[] = []
  const openStorage = async (options: { keys?: Buffer[], onEvent?: (event: StorageEvent) => void } = {}): Promise<RedisStorage> => {
    const storage = await redisStorage({ url: redis.url, prefix, keys: options.keys ?? [key], ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }) })
    await storage.ready()
    opened.push(storage)
    return storage
  }
  t.teardown(async () => { await Promise.all(opened.map((storage) => storage.close())) })

  t.test('the storage contract', async (t) => {
    await storageContract(t, () => openStorage())
  })

  t.test('at rest: sealed, and nothing planted or moved is served', async (t) => {
    const storage = await openStorage()
    const pem = '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n'
    await storage.store('acme/x/certificates/a.test/key.pem', pem)
    const raw = await redis.cli('HGET', `${prefix}v:acme/x/certificates/a.test/key.pem`, 'v')
    t.notMatch(raw, /PRIVATE KEY|secret/, 'the private key is not in clear in Redis')
    t.match(raw, /^v1\./)
    await redis.cli('HSET', `${prefix}v:acme/x/certificates/a.test/cert.pem`, 'v', 'planted by someone with access to Redis')
    await t.rejects(storage.load('acme/x/certificates/a.test/cert.pem'), { code: 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY' }, 'a value not sealed by the suite is refused')
    await redis.cli('HSET', `${prefix}v:acme/x/challenges/token`, 'v', raw)
    await t.rejects(storage.load('acme/x/challenges/token'), { code: 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY' }, 'a sealed value copied to another key is refused')
    const stranger = await openStorage({ keys: [randomBytes(32)] })
    await t.rejects(stranger.load('acme/x/certificates/a.test/key.pem'), /key this instance does not have/, 'an instance with other TLS_STORAGE_KEYS reads nothing')
    const rotated = await openStorage({ keys: [randomBytes(32), key] })
    t.equal(await rotated.load('acme/x/certificates/a.test/key.pem'), pem, 'rotation: the old key second still opens what it sealed')
  })

  t.test('a certificate written back in Redis (an old dump, sealed values someone kept): the newer local copy is served and kept', async (t) => {
    const storage = await openStorage()
    const directory = 'https://acme.test/directory'
    const dir = tempDir('rollback-', t)
    const store = new AcmeStore(storage, directory, { cache: fileStorage(dir) })
    const names = ['app.example.com']
    const meta = { names, onDemand: false }
    const old = await generateSelfSigned(names, 90, Date.now() - 40 * 86_400_000)
    await store.writeCertificate('app.example.com', meta, old.key, old.cert)
    const base = `${prefix}v:${store.prefix}/certificates/app.example.com`
    const dump = { key: await redis.cli('HGET', `${base}/key.pem`, 'v'), cert: await redis.cli('HGET', `${base}/cert.pem`, 'v') }
    // The renewal, made early perhaps because the old key leaked; then the old sealed values come back.
    const renewed = await generateSelfSigned(names, 90)
    await store.writeCertificate('app.example.com', meta, renewed.key, renewed.cert)
    await redis.cli('HSET', `${base}/key.pem`, 'v', dump.key)
    await redis.cli('HSET', `${base}/cert.pem`, 'v', dump.cert)
    t.equal(await storage.load(`${store.prefix}/certificates/app.example.com/cert.pem`), old.cert, 'the sealed old values open: sealing proves who wrote a value, not that it is the latest')
    const read = await store.readCertificate('app.example.com', names)
    t.equal(read?.pair.cert, renewed.cert, 'the instance serves its newer local copy, not the one written back')
    t.equal(read?.rolledBackTo?.getTime(), new Date(inspectCertificate(old.cert).notAfter).getTime(), 'and says what the storage went back to')
    t.equal((await store.readCertificate('app.example.com', names))?.pair.cert, renewed.cert, 'the local copy is not overwritten by the older one')

    // An instance restarting with that TLS_DIR: it serves the newer copy and reports the rollback.
    const events: Array<{ type: string, error?: string }> = []
    const config = loadConfig({
      TLS_MODE: 'acme',
      ACME_DOMAINS: names.join(','),
      ACME_EMAIL: 'ops@example.com',
      ACME_AGREE_TOS: 'true',
      ACME_DIRECTORY: directory,
      TLS_DIR: dir,
      TLS_STORAGE: 'redis',
      REDIS_URL: redis.url,
      TLS_REDIS_PREFIX: prefix,
      TLS_STORAGE_KEYS: key.toString('base64'),
      HTTP_PORT: 'off'
    })
    if (config.tls === false) throw new Error('tls is off')
    const source = acmeSource(config.tls, { onEvent: (event) => { events.push(event as { type: string, error?: string }) } })
    t.teardown(() => source.stop())
    const served = await source.load()
    t.equal(served.cert, renewed.cert, 'a restarted instance serves the newer certificate')
    const rejected = events.find((event) => event.type === 'storage-rejected')
    t.match(rejected?.error, /holds an older certificate .* than this instance's copy in TLS_DIR/, 'and reports the rollback as tls.storage-rejected')
    // A new instance has no copy to compare with: it serves what the storage holds (docs/acme.md).
    const fresh = new AcmeStore(storage, directory, { cache: fileStorage(tempDir('fresh-', t)) })
    t.equal((await fresh.readCertificate('app.example.com', names))?.pair.cert, old.cert, 'the limit, documented: a new instance serves what the storage holds')
  })

  t.test('a holder paused past its lease loses it, and its late write is refused', async (t) => {
    const paused = await openStorage()
    const next = await openStorage()
    const lease = await paused.lock('acme/x/locks/b.test', { ttl: 300 })
    if (!isLease(lease)) throw new Error('the lock was not free')
    const lost = new Promise<void>((resolve) => lease.signal.addEventListener('abort', () => resolve(), { once: true }))
    // The holder's whole process stops (a VM paused, a long GC): nothing runs, not even its renewals.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 700)
    const taken = await next.lock('acme/x/locks/b.test', { ttl: 5000 })
    t.ok(isLease(taken), 'another instance takes the lock once the lease ran out in Redis')
    if (!isLease(taken)) return
    t.ok(taken.fence > lease.fence, 'with a higher fence')
    await next.store('acme/x/certificates/b.test/cert.pem', 'the new holder\'s', { guard: taken })
    await t.rejects(paused.store('acme/x/certificates/b.test/cert.pem', 'the paused holder\'s', { guard: lease }), { code: 'ERR_SECURE_HTTPS_LOCK_LOST' })
    t.equal(await next.load('acme/x/certificates/b.test/cert.pem'), 'the new holder\'s', 'checked and written in one step: the late write is refused')
    await lost
    t.ok(lease.signal.aborted, 'and the paused holder learns at its next renewal that the lease is gone')
    await paused.unlock(lease)
    t.notOk(isLease(await paused.lock('acme/x/locks/b.test')), 'unlocking a lost lease leaves the new holder\'s lock alone')
    await next.unlock(taken)
  })

  t.test('other instances hear of a stored value at once', async (t) => {
    const writer = await openStorage()
    const reader = await openStorage()
    const heard: string[] = []
    const arrived = new Promise<void>((resolve) => {
      const stop = reader.watch?.((stored) => {
        heard.push(stored)
        if (stored === 'acme/x/certificates/c.test/cert.pem') {
          stop?.()
          resolve()
        }
      })
    })
    // The subscription is ready once Redis counts the subscriber.
    for (let i = 0; i < 1200 && await redis.cli('PUBSUB', 'NUMSUB', `${prefix}changes`) !== `${prefix}changes\n1`; i++) await new Promise((resolve) => setTimeout(resolve, 25))
    await writer.store('acme/x/certificates/c.test/cert.pem', 'new')
    await arrived
    t.ok(heard.includes('acme/x/certificates/c.test/cert.pem'), 'the key of the value, never the value')
  })

  t.test('Redis away: commands fail at once, the outage and its end are reported once', async (t) => {
    const events: StorageEvent[] = []
    const storage = await openStorage({ onEvent: (event) => events.push(event) })
    await storage.store('o/value', 'before')
    await redis.stop()
    for (let i = 0; i < 1200 && !events.some((event) => event.type === 'down'); i++) await new Promise((resolve) => setTimeout(resolve, 25))
    const started = Date.now()
    await t.rejects(storage.load('o/value'), { code: 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE', message: /Redis at 127\.0\.0\.1:\d+ is/ })
    t.ok(Date.now() - started < 1000, 'without waiting for a timeout')
    await t.rejects(storage.lock('o/lock'), { code: 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE' })
    await redis.start()
    // The client reconnects on its own backoff and reports it when ready: wait for the report
    // (ready() alone gives up after its command timeout, 2 s, which a busy machine can pass).
    for (let i = 0; i < 1200 && !events.some((event) => event.type === 'up'); i++) await new Promise((resolve) => setTimeout(resolve, 25))
    await storage.ready()
    await storage.store('o/value', 'after')
    t.equal(await storage.load('o/value'), 'after', 'it works again once Redis is back')
    t.same(events.map((event) => event.type), ['down', 'up'], 'one report for the outage, one for its end')
  })

  t.test('a watcher still hears after Redis restarted: the storage subscribes on each connection itself', async (t) => {
    // ioredis's autoResubscribe sent the SUBSCRIBE without a catch: Redis going away before the
    // reply was an unhandled rejection ("Connection is closed.", which failed this file in CI). That
    // race cannot be timed in a test; what made it possible can be checked: autoResubscribe is off
    // on the subscriber (reached through an app's own client, whose duplicate() the storage uses),
    // and the storage's own subscription on each connection keeps the watchers hearing, for a
    // storage with its own client and one with the app's.
    const numsub = async (): Promise<number> => Number((await redis.cli('PUBSUB', 'NUMSUB', `${prefix}changes`)).split('\n')[1])
    const subscribed = async (count: number): Promise<void> => {
      for (let i = 0; i < 1200 && await numsub() !== count; i++) await new Promise((resolve) => setTimeout(resolve, 25))
    }
    const own = new Redis(redis.url)
    t.teardown(() => own.disconnect())
    let subscriber: Redis | null = null
    const duplicate = own.duplicate.bind(own)
    own.duplicate = (override) => { subscriber = duplicate(override); return subscriber }
    const mine = await redisStorage({ client: own, prefix, keys: [key] })
    t.teardown(() => mine.close())
    await mine.ready()
    const writer = await openStorage()
    const reader = await openStorage()
    const before = await numsub()
    const heard = { reader: [] as string[], mine: [] as string[] }
    reader.watch?.((stored) => { heard.reader.push(stored) })
    mine.watch?.((stored) => { heard.mine.push(stored) })
    t.equal((subscriber as Redis | null)?.options.autoResubscribe, false, 'ioredis does not resubscribe on its own')
    await subscribed(before + 2)
    await redis.stop()
    await redis.start()
    await Promise.all([writer.ready(), reader.ready(), mine.ready()])
    await subscribed(before + 2)
    await writer.store('after/restart', 'x')
    for (let i = 0; i < 1200 && !(heard.reader.includes('after/restart') && heard.mine.includes('after/restart')); i++) await new Promise((resolve) => setTimeout(resolve, 25))
    t.ok(heard.reader.includes('after/restart'), 'subscribed again after the reconnection, with its own client')
    t.ok(heard.mine.includes('after/restart'), 'and with the app\'s')
  })
})
