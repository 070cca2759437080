/**
 * TLS_STORAGE=redis when Redis's copy of a certificate is not the one to serve, against a real
 * redis-server and a real pebble: Redis went back to an older certificate (a restored dump), a
 * value in it fails authentication, or its key and certificate do not belong together (a write cut
 * between the two). In each case the instance serves its local copy from TLS_DIR, judges that copy
 * as any other (renewed under the lock when due, never "storage unreachable"), and a restart does
 * not fall back to the temporary self-signed certificate.
 */
import { randomBytes, X509Certificate } from 'node:crypto'
import t, { type Test } from 'tap'
import { resolveConfig } from '../index.ts'
import { fileStorage } from '../storage/file.ts'
import { redisStorage, type RedisStorage } from '../storage/redis.ts'
import { acmeSource, type AcmeCertificateSource, type AcmeEvent } from '../tls/acme-source.ts'
import { AcmeStore } from '../tls/acme-store.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'
import type { TlsConfig } from '../schemas/tls.ts'
import { tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { acmeOptions, answerChallenges, startPebble, type Pebble } from './helpers/pebble.ts'
import { startRedis, type RedisServer } from './helpers/redis.ts'

const DAY = 86_400_000
const key = randomBytes(32)

/** Waits for a condition, polling; the source's own timers are unref'd and would let the loop end. */
async function until (condition: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !condition() && Date.now() < end;) await new Promise((resolve) => setTimeout(resolve, 5))
}

interface Setup {
  name: string
  dir: string
  prefix: string
  /** The store as the fleet sees it: Redis, with `dir` as the local copy. */
  store: AcmeStore
  storage: RedisStorage
  config: TlsConfig
  /** Redis's key of a certificate file, e.g. `cert.pem`. */
  redisKey (file: string): string
}

t.test('Redis holds a copy that is not the one to serve', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv', 'redis-server', 'redis-cli']) === null) return
  const pebble: Pebble = await startPebble()
  t.teardown(() => pebble.close())
  const redis: RedisServer = await startRedis()
  t.teardown(() => redis.close())
  const sources: AcmeCertificateSource[] = []
  // Where pebble validates HTTP-01: answered from whichever source is running.
  await answerChallenges(t, pebble, sources)
  const { intermediate } = await pebble.issuers()
  const byPebble = (cert: string | undefined): boolean => cert !== undefined && new X509Certificate(cert).checkIssued(new X509Certificate(intermediate))

  async function setup (t: Test, name: string, dir = tempDir('review-redis-', t)): Promise<Setup> {
    const prefix = `r${randomBytes(3).toString('hex')}:`
    const storage = await redisStorage({ url: redis.url, prefix, keys: [key] })
    await storage.ready()
    t.teardown(() => storage.close())
    const options = acmeOptions(pebble, dir, [name], pebble.httpPort)
    const tls = { ...(options.tls as Record<string, unknown>), storage: 'redis', redisUrl: redis.url, redisPrefix: prefix, storageKeys: [key.toString('base64')] }
    const config = resolveConfig({ ...options, tls }).tls
    if (config === false) throw new Error('no tls')
    const store = new AcmeStore(storage, config.acme.directory, { cache: fileStorage(dir) })
    return { name, dir, prefix, store, storage, config, redisKey: (file) => `${prefix}v:${store.prefix}/certificates/${name}/${file}` }
  }

  function source (t: Test, s: Setup): { source: AcmeCertificateSource, events: AcmeEvent[], of: (type: AcmeEvent['type']) => AcmeEvent[] } {
    const events: AcmeEvent[] = []
    const created = acmeSource(s.config, { onEvent: (event) => { events.push(event) } })
    sources.push(created)
    t.teardown(() => created.stop())
    return { source: created, events, of: (type) => events.filter((event) => event.type === type) }
  }

  /** Writes `older`, then `newer` (both copies), then puts `older`'s sealed values back in Redis. */
  async function rollBack (s: Setup, older: { key: string, cert: string }, newer: { key: string, cert: string }): Promise<void> {
    const meta = { names: [s.name], onDemand: false }
    await s.store.writeCertificate(s.name, meta, older.key, older.cert)
    const dump = { key: await redis.cli('HGET', s.redisKey('key.pem'), 'v'), cert: await redis.cli('HGET', s.redisKey('cert.pem'), 'v') }
    await s.store.writeCertificate(s.name, meta, newer.key, newer.cert)
    await redis.cli('HSET', s.redisKey('key.pem'), 'v', dump.key)
    await redis.cli('HSET', s.redisKey('cert.pem'), 'v', dump.cert)
  }

  t.test('rolled back: the newer local copy is judged as any other, and renewed under the lock when due', async (t) => {
    const s = await setup(t, 'rollback-due.test')
    const older = await generateSelfSigned([s.name], 90, Date.now() - 40 * DAY)
    // Issued later, and a sixth of its lifetime left: due.
    const newer = await generateSelfSigned([s.name], 30, Date.now() - 25 * DAY)
    await rollBack(s, older, newer)
    const r = source(t, s)
    t.equal((await r.source.load()).cert, newer.cert, 'the newer local copy is served')
    r.source.start({ update: () => {}, error: () => {} })
    await until(() => r.of('issued').length > 0 || r.of('storage-unavailable').length > 0, 30_000)
    t.same(r.of('storage-unavailable'), [], 'never reported as "the shared storage cannot be reached": Redis answers')
    t.match(r.of('ordering')[0], { reason: /due for renewal/ }, 'ordered because the local copy is due')
    t.equal(r.of('issued').length, 1, 'and issued')
    const stored = await s.store.readCertificate(s.name, [s.name])
    t.ok(byPebble(stored?.pair.cert), 'Redis holds the new certificate')
    t.equal(stored?.rolledBackTo, undefined, 'and is no longer behind')
    t.equal(r.of('storage-rejected').length, 1, 'the rollback was reported once, not at every read')
  })

  t.test('rolled back, the local copy not due: checked, nothing ordered, no outage reported', async (t) => {
    const s = await setup(t, 'rollback-fresh.test')
    await rollBack(s, await generateSelfSigned([s.name], 90, Date.now() - 40 * DAY), await generateSelfSigned([s.name], 90, Date.now() - DAY))
    const r = source(t, s)
    await r.source.load()
    r.source.start({ update: () => {}, error: () => {} })
    await until(() => r.of('checked').length > 0 || r.of('storage-unavailable').length > 0, 10_000)
    t.equal(r.of('checked').length, 1, 'the check ran to its end')
    t.same(r.of('storage-unavailable'), [])
    t.same(r.of('ordering'), [])
    t.ok(r.source.nextCheck() !== null && (r.source.nextCheck()?.getTime() ?? 0) > Date.now() + 60_000, 'the next check is at the renewal time, not in 10 s')
  })
  /** Writes a certificate (both copies), then plants a value in Redis that is not sealed by the suite. */
  async function tamper (s: Setup, pem: { key: string, cert: string } | null): Promise<void> {
    if (pem !== null) await s.store.writeCertificate(s.name, { names: [s.name], onDemand: false }, pem.key, pem.cert)
    await redis.cli('HSET', s.redisKey('key.pem'), 'v', 'planted by someone with access to Redis')
    await redis.cli('HSET', s.redisKey('cert.pem'), 'v', 'planted by someone with access to Redis')
  }

  t.test('a value that fails authentication, the local copy not due: the copy is served, checked, and no order failure is reported', async (t) => {
    const s = await setup(t, 'rejected-fresh.test')
    const pem = await generateSelfSigned([s.name], 90, Date.now() - DAY)
    await tamper(s, pem)
    const r = source(t, s)
    t.equal((await r.source.load()).cert, pem.cert, 'a restart serves the local copy, not a temporary self-signed certificate')
    t.match(r.of('storage-rejected'), [{ error: /failed authentication|not sealed by fastify-secure-https/ }], 'and reports the rejected value')
    r.source.start({ update: () => {}, error: () => {} })
    await until(() => r.of('checked').length > 0 || r.of('order-failed').length > 0, 10_000)
    t.equal(r.of('checked').length, 1, 'the copy is judged: not due')
    t.same(r.of('order-failed'), [], 'no order failure without an order')
    t.same(r.of('ordering'), [])
    t.equal(r.of('storage-rejected').length, 1, 'reported once')
  })

  t.test('a value that fails authentication, the local copy due: renewed under the lock, and Redis holds a good value again', async (t) => {
    const s = await setup(t, 'rejected-due.test')
    await tamper(s, await generateSelfSigned([s.name], 30, Date.now() - 25 * DAY))
    const r = source(t, s)
    await r.source.load()
    r.source.start({ update: () => {}, error: () => {} })
    await until(() => r.of('issued').length > 0 || r.of('order-failed').length > 0, 30_000)
    t.same(r.of('order-failed'), [])
    t.match(r.of('ordering')[0], { reason: /due for renewal/ })
    t.equal(r.of('issued').length, 1)
    t.ok(byPebble((await s.store.readCertificate(s.name, [s.name]))?.pair.cert), 'the new certificate replaced the planted values')
  })

  t.test('a value that fails authentication and no local copy: ordered, not counted as a failed order', async (t) => {
    const s = await setup(t, 'rejected-none.test')
    await tamper(s, null)
    const r = source(t, s)
    t.equal((await r.source.load()).info.selfSigned, true, 'nothing to serve but the temporary certificate')
    r.source.start({ update: () => {}, error: () => {} })
    await until(() => r.of('issued').length > 0 || r.of('order-failed').length > 0, 30_000)
    t.same(r.of('order-failed'), [])
    t.match(r.of('ordering')[0], { reason: /no certificate stored yet/ })
    t.equal(r.of('issued').length, 1)
    t.match(r.of('storage-rejected')[0], { error: /no copy in TLS_DIR/ })
  })
  /** Writes a certificate (both copies), then a new key alone in Redis: a write cut between key and certificate. */
  async function cut (s: Setup, pem: { key: string, cert: string }): Promise<void> {
    await s.store.writeCertificate(s.name, { names: [s.name], onDemand: false }, pem.key, pem.cert)
    const next = await generateSelfSigned([s.name])
    await s.storage.store(`${s.store.prefix}/certificates/${s.name}/key.pem`, next.key)
  }

  t.test('a key and certificate that are not a pair (a write cut between them): a restart serves the local copy', async (t) => {
    const s = await setup(t, 'cut-fresh.test')
    const pem = await generateSelfSigned([s.name], 90, Date.now() - DAY)
    await cut(s, pem)
    const r = source(t, s)
    t.equal((await r.source.load()).cert, pem.cert, 'the last whole pair, not a temporary self-signed certificate')
    r.source.start({ update: () => {}, error: () => {} })
    await until(() => r.of('checked').length > 0 || r.of('ordering').length > 0 || r.of('order-failed').length > 0, 10_000)
    t.equal(r.of('checked').length, 1, 'judged: not due')
    t.same(r.of('ordering'), [], 'nothing ordered for a copy in date')
  })

  t.test('a key and certificate that are not a pair, the local copy due: renewed, and Redis holds a pair again', async (t) => {
    const s = await setup(t, 'cut-due.test')
    const pem = await generateSelfSigned([s.name], 30, Date.now() - 25 * DAY)
    await cut(s, pem)
    const r = source(t, s)
    t.equal((await r.source.load()).cert, pem.cert)
    r.source.start({ update: () => {}, error: () => {} })
    await until(() => r.of('issued').length > 0 || r.of('order-failed').length > 0, 30_000)
    t.match(r.of('ordering')[0], { reason: /due for renewal/ }, 'ordered because the copy is due, not because nothing was found')
    t.equal(r.of('issued').length, 1)
    const stored = await s.store.readCertificate(s.name, [s.name])
    t.ok(byPebble(stored?.pair.cert) && stored?.mismatched === undefined, 'Redis holds the new pair')
  })
})
