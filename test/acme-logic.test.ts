/**
 * The pure parts of TLS_MODE=acme: configuration messages, renewal time, backoff, problem
 * documents, the on-disk store and its lock, and the challenge route's answers.
 */
import t from 'tap'
import Fastify from 'fastify'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, resolveConfig } from '../index.ts'
import { acmeChallenges, acmeLogState, logAcmeEvent } from '../plugins/acme-challenge.ts'
import { problemIn, parseRetryAfter } from '../tls/acme-client.ts'
import { acmeSource, certificateGroups, renewalTime, retryDelay, type AcmeEvent } from '../tls/acme-source.ts'
import { isAcmeSource } from '../tls/source.ts'
import { AcmeStore, directoryFolder } from '../tls/acme-store.ts'
import { isLease, type Storage } from '../storage/storage.ts'
import { fileStorage, lockScope } from '../storage/file.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'
import { selfSignedSource } from '../tls/self-signed-source.ts'
import { tempDir } from './helpers/app.ts'

const DAY = 86_400_000

t.test('configuration', async (t) => {
  const env = { TLS_MODE: 'acme', ACME_DOMAINS: 'example.com,www.example.com', ACME_EMAIL: 'ops@example.com' }
  const refused = t.throws(() => loadConfig(env))
  t.ok(refused instanceof ConfigError)
  t.match((refused as unknown as Error).message, /ACME_AGREE_TOS: must be true with TLS_MODE=acme: the CA requires you to accept its terms of service .*set ACME_AGREE_TOS=true/,
    'the terms of service are accepted only with ACME_AGREE_TOS=true, with a message that says so')
  const missing = t.throws(() => loadConfig({ TLS_MODE: 'acme', ACME_AGREE_TOS: 'true' }))
  t.match((missing as unknown as Error).message, /ACME_DOMAINS: is required with TLS_MODE=acme/)
  t.match((missing as unknown as Error).message, /ACME_EMAIL: is required with TLS_MODE=acme/)

  const config = loadConfig({ ...env, ACME_AGREE_TOS: 'true' })
  const tls = config.tls === false ? null : config.tls
  t.equal(tls?.acme.directory, 'https://acme-v02.api.letsencrypt.org/directory', 'Let\'s Encrypt by default')
  t.equal(tls?.acme.retryDelay, 300, 'five minutes before the first retry')
  t.equal(tls?.acme.retryMaxDelay, 86_400, 'at most a day between attempts')
  const staging = loadConfig({ ...env, ACME_AGREE_TOS: 'true', ACME_DIRECTORY: 'letsencrypt-staging' })
  t.equal(staging.tls === false ? null : staging.tls.acme.directory, 'https://acme-staging-v02.api.letsencrypt.org/directory')
  const custom = loadConfig({ ...env, ACME_AGREE_TOS: 'true', ACME_DIRECTORY: 'https://127.0.0.1:14000/dir', ACME_CA_FILE: '/etc/pebble/ca.pem' })
  t.equal(custom.tls === false ? null : custom.tls.acme.directory, 'https://127.0.0.1:14000/dir')
  t.equal(custom.tls === false ? null : custom.tls.acme.caFile, '/etc/pebble/ca.pem')
  t.throws(() => loadConfig({ ...env, ACME_AGREE_TOS: 'true', ACME_DIRECTORY: 'http://insecure.example/dir' }), /ACME_DIRECTORY: "http:\/\/insecure.example\/dir" is not an ACME directory/)
  t.throws(() => resolveConfig({ tls: { mode: 'acme', acme: { domains: ['a.test'], email: 'a@a.test', agreeTos: true, retryDelay: 600, retryMaxDelay: 60 } } }),
    /retryMaxDelay: must be at least retryDelay/)
})

t.test('configuration: names, groups, challenges, storage', async (t) => {
  const env = { TLS_MODE: 'acme', ACME_EMAIL: 'ops@example.com', ACME_AGREE_TOS: 'true' }
  const tlsOf = (config: ReturnType<typeof loadConfig>): Exclude<typeof config.tls, false> => {
    if (config.tls === false) throw new Error('no tls')
    return config.tls
  }
  const grouped = tlsOf(loadConfig({ ...env, ACME_DOMAINS: 'api.example.com, Example.com+WWW.example.com.' }))
  t.same(grouped.acme.domains, ['api.example.com', 'example.com', 'www.example.com'], 'every name, lower-cased, in order')
  t.same(grouped.acme.groups, [['example.com', 'www.example.com']], 'names joined with + share a certificate')
  t.same(certificateGroups(grouped.acme), [{ name: 'api.example.com', names: ['api.example.com'] }, { name: 'example.com', names: ['example.com', 'www.example.com'] }], 'the others get one each')
  t.same(resolveConfig({ tls: grouped }).tls, grouped, 'a resolved config parses to itself')
  const inCode = tlsOf(resolveConfig({ tls: { mode: 'acme', acme: { domains: ['a.test', 'b.test', 'c.test'], groups: [['b.test', 'c.test']], email: 'a@a.test', agreeTos: true } } }))
  t.same(certificateGroups(inCode.acme).map((group) => group.names), [['a.test'], ['b.test', 'c.test']], 'groups in code')
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'a.test,a.test+b.test' }), /ACME_DOMAINS: puts a\.test on two certificates/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'a.test,https://b.test/' }), /ACME_DOMAINS: "https:\/\/b\.test\/" is not a host name/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: '*.example.com' }), /ACME_DOMAINS: \*\.example\.com is a wildcard: only DNS-01 can validate wildcards; set ACME_CHALLENGE=dns-01/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'example.com', ACME_CHALLENGE: 'dns-01' }), /tls\.acme\.dns: is required with ACME_CHALLENGE=dns-01: give a DNS provider in code/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'example.com', ACME_CHALLENGE: 'dns-99' }), /ACME_CHALLENGE: must be one of http-01, tls-alpn-01, dns-01/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: '10.0.0.1', ACME_CHALLENGE: 'tls-alpn-01' }), /IP identifiers are validated with ACME_CHALLENGE=http-01 only/)
  const dns = { set: async () => {}, remove: async () => {} }
  t.same(tlsOf(resolveConfig({ tls: { mode: 'acme', acme: { domains: ['*.example.com+example.com'], challenge: 'dns-01', dns, email: 'a@a.test', agreeTos: true } } })).acme.groups, [['*.example.com', 'example.com']], 'a wildcard with DNS-01')

  const redis = loadConfig({ ...env, ACME_DOMAINS: 'a.test', TLS_STORAGE: 'redis', REDIS_URL: 'redis://10.0.0.5:6379', TLS_STORAGE_KEYS: 'YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=' })
  t.equal(tlsOf(redis).redisUrl, 'redis://10.0.0.5:6379', 'REDIS_URL serves the certificate storage too')
  t.equal(tlsOf(redis).redisPrefix, 'secure-https:tls:')
  const missing = t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'a.test', TLS_STORAGE: 'redis' })) as unknown as Error
  t.match(missing.message, /REDIS_URL: is required with TLS_STORAGE=redis/)
  t.match(missing.message, /TLS_STORAGE_KEYS: is required with TLS_STORAGE=redis: it seals the keys and certificates kept in Redis; .*openssl rand -base64 32/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'a.test', TLS_STORAGE: 'redis', REDIS_URL: 'redis://x', TLS_STORAGE_KEYS: 'c2hvcnQ=' }), /TLS_STORAGE_KEYS: a storage key must be 32 bytes in base64 \(got 5 bytes\)/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'a.test', TLS_STORAGE: 'redis', REDIS_URL: 'redis://x', TLS_STORAGE_KEYS: Buffer.alloc(32).toString('base64') }), /one byte repeated/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'a.test', TLS_STORAGE: 'consul' }), /TLS_STORAGE: must be/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'a.test', REDIS_URL: 'http://x' }), /REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/)
  t.throws(() => loadConfig({ ...env, ACME_DOMAINS: 'a.test', TLS_REDIS_PREFIX: 'a b' }), /TLS_REDIS_PREFIX: must be 1 to 100 letters/)
})

t.test('renewal time and backoff', async (t) => {
  const notBefore = new Date('2026-01-01T00:00:00Z')
  const notAfter = new Date('2026-04-01T00:00:00Z') // 90 days
  t.equal(renewalTime({ notBefore, notAfter }, 1 / 3).toISOString(), '2026-03-02T00:00:00.000Z', 'renewal when a third of the lifetime remains (day 60 of 90)')

  t.same([1, 2, 3, 4, 5, 6].map((n) => retryDelay(n, 300, 86_400) / 60_000), [5, 10, 20, 40, 80, 160], 'minutes, doubling')
  t.equal(retryDelay(20, 300, 86_400), 86_400_000, 'capped at a day')
  t.equal(retryDelay(10_000, 300, 86_400), 86_400_000, 'even after very many failures')
  t.equal(retryDelay(1, 300, 86_400, 3 * 3600), 3 * 3600_000, 'a longer Retry-After from the CA wins')
  t.equal(retryDelay(1, 300, 86_400, 10), 300_000, 'a shorter one does not shorten the backoff')
})

t.test('problem documents and Retry-After', async (t) => {
  const rejected = { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates', status: 429 }
  t.equal(problemIn(rejected), rejected, 'a problem document as the response body')
  const challengeProblem = { type: 'urn:ietf:params:acme:error:connection', detail: 'refused' }
  t.equal(problemIn({ status: 'invalid', error: challengeProblem }), challengeProblem, 'the error of an invalid challenge or order')
  t.equal(problemIn({ status: 'invalid', challenges: [{ type: 'http-01' }, { type: 'http-01', error: challengeProblem }] }), challengeProblem, 'the failed challenge of an invalid authorization')
  t.equal(problemIn({ status: 'invalid', challenges: [{ type: 'http-01' }] }), null)
  t.equal(problemIn({ status: 'valid', error: challengeProblem }), null, 'nothing from a valid object')
  t.equal(problemIn({ type: 'about:blank' }), null, 'not an ACME problem')
  t.equal(problemIn('text'), null)
  t.equal(problemIn(null), null)

  t.equal(parseRetryAfter(undefined), null)
  t.equal(parseRetryAfter('120'), 120)
  const now = Date.parse('2026-01-01T00:00:00Z')
  t.equal(parseRetryAfter('Thu, 01 Jan 2026 01:00:00 GMT', now), 3600, 'an HTTP date')
  t.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0, 'a date in the past means now')
  t.equal(parseRetryAfter('soon'), null)
})

t.test('the store', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal(directoryFolder('https://acme-v02.api.letsencrypt.org/directory'), 'acme-v02.api.letsencrypt.org')
  t.equal(directoryFolder('https://127.0.0.1:14000/dir'), '127.0.0.1_14000', 'one folder per directory: staging never mixes with production')
  t.equal(directoryFolder('https://[::1]:14000/dir'), '___1__14000')
  const store = new AcmeStore(dir, 'https://127.0.0.1:14000/dir')

  t.test('account key: created once, 0600, then reused', async (t) => {
    let created = 0
    const make = async (): Promise<string> => { created++; return `key ${created}` }
    t.equal(await store.accountKey(make), 'key 1')
    t.equal(await store.accountKey(make), 'key 1')
    t.equal(created, 1)
    t.equal(statSync(join(store.folder, 'account-key.pem')).mode & 0o777, 0o600)
  })

  t.test('pairs: in date, expired (kept, flagged), mismatched or missing (ignored)', async (t) => {
    t.equal(await store.readCertificate('a.test', ['a.test']), null, 'nothing stored yet')
    const good = await generateSelfSigned(['a.test'])
    await store.writeCertificate('a.test', { names: ['a.test'], onDemand: false }, good.key, good.cert)
    const stored = await store.readCertificate('a.test', ['a.test', 'b.test'])
    t.equal(stored?.inDate, true)
    t.same(stored?.missing, ['b.test'], 'names the configuration added since')
    const folder = join(store.folder, 'certificates', 'a.test')
    t.equal(statSync(join(folder, 'key.pem')).mode & 0o777, 0o600, 'the key is private')
    t.same(await store.readMeta('a.test'), { names: ['a.test'], onDemand: false })

    const expired = await generateSelfSigned(['a.test'], 1, Date.now() - 10 * DAY)
    await store.writeCertificate('a.test', { names: ['a.test'], onDemand: false }, expired.key, expired.cert)
    const old = await store.readCertificate('a.test', ['a.test'])
    t.equal(old?.inDate, false, 'an expired certificate is returned, flagged, never dropped')
    t.equal(old?.pair.cert, expired.cert)

    const other = await generateSelfSigned(['a.test'])
    writeFileSync(join(folder, 'key.pem'), other.key)
    t.equal(await store.readCertificate('a.test', ['a.test']), null, 'a key that does not match (a writer between two files) is not served')
    writeFileSync(join(folder, 'cert.pem'), 'garbage')
    t.equal(await store.readCertificate('a.test', ['a.test']), null, 'nor an unreadable certificate')
  })

  t.test('the single certificate of earlier versions serves the names it covers until their own arrive', async (t) => {
    const legacy = await generateSelfSigned(['old.test', 'www.old.test'])
    await store.writePair(legacy.key, legacy.cert)
    t.equal((await store.readCertificate('old.test', ['old.test']))?.pair.cert, legacy.cert, 'read for a name it covers')
    t.equal((await store.readCertificate('www.old.test', ['www.old.test']))?.legacy, true)
    t.equal(await store.readCertificate('new.test', ['new.test']), null, 'not for a name it does not cover')
    const own = await generateSelfSigned(['old.test'])
    await store.writeCertificate('old.test', { names: ['old.test'], onDemand: false }, own.key, own.cert)
    t.equal((await store.readCertificate('old.test', ['old.test']))?.pair.cert, own.cert, 'its own certificate wins once stored')
    const expired = await generateSelfSigned(['gone.test'], 1, Date.now() - 10 * DAY)
    await store.writePair(expired.key, expired.cert)
    t.equal(await store.readCertificate('gone.test', ['gone.test']), null, 'an expired one is not a reason to skip ordering')
  })

  t.test('the lock: a lease, exclusive, refreshed, taken over once stale or dead', async (t) => {
    const lock = await store.lock('a.test')
    t.ok(isLease(lock), 'taken when free')
    const holder = await store.lock('a.test')
    t.same(isLease(holder) ? null : holder.owner, `${process.pid}@${hostname()}`, 'busy while held, naming its holder')
    t.ok(isLease(await store.lock('b.test')), 'another certificate has its own lock')
    if (isLease(lock)) await store.unlock(lock)
    const path = join(store.folder, 'locks', 'a.test.lock')
    t.notOk(existsSync(path), 'released')

    writeFileSync(path, JSON.stringify({ owner: '1@another-host', pid: 1, host: 'another-host', token: 'theirs', since: new Date().toISOString(), ttl: 60_000 }))
    t.notOk(isLease(await store.lock('a.test')), 'a fresh lock from another host is respected')
    const old = new Date(Date.now() - 61_000)
    utimesSync(path, old, old)
    const taken = await store.lock('a.test')
    t.ok(isLease(taken), 'one not refreshed for its lease (60 s) is taken over')
    writeFileSync(path, JSON.stringify({ owner: '1@another-host', pid: 1, host: 'another-host', token: 'theirs', since: 'x', ttl: 60_000 }))
    if (isLease(taken)) await store.unlock(taken)
    t.ok(existsSync(path), 'releasing never removes a lock that someone else took since')

    const dead = { owner: 'dead', pid: 2 ** 22 + 12345, host: hostname(), token: 'dead', since: new Date().toISOString(), ttl: 60_000 }
    writeFileSync(path, JSON.stringify({ ...dead, scope: lockScope() }))
    const fromDead = await store.lock('a.test')
    t.ok(isLease(fromDead), 'one left by a dead process on this host is taken over at once')
    if (isLease(fromDead)) await store.unlock(fromDead)
    // Another container with the same hostname sharing TLS_DIR: its PIDs are another namespace's.
    writeFileSync(path, JSON.stringify({ ...dead, scope: `${hostname()} ${'0'.repeat(8)}-other-boot pid:[1]` }))
    t.notOk(isLease(await store.lock('a.test')), 'a fresh lock of a PID free here but held in another PID namespace with the same hostname is respected')
    writeFileSync(path, JSON.stringify(dead))
    t.notOk(isLease(await store.lock('a.test')), 'as is a fresh one of an earlier version, which does not say its namespace')
    utimesSync(path, old, old)
    const aged = await store.lock('a.test')
    t.ok(isLease(aged), 'both are taken over once stale')
    if (isLease(aged)) await store.unlock(aged)

    writeFileSync(path, '{"pid": 1')
    t.notOk(isLease(await store.lock('a.test')), 'a half-written lock is respected while fresh')
    utimesSync(path, old, old)
    const again = await store.lock('a.test')
    t.ok(isLease(again), 'and taken over once stale')
    if (isLease(again)) await store.unlock(again)
  })

  t.test('challenges', async (t) => {
    await store.putChallenge('tok_EN-1', 'tok_EN-1.thumb')
    t.equal(await store.challenge('tok_EN-1'), 'tok_EN-1.thumb')
    t.equal(await store.challenge('../../account-key.pem'), null, 'a token is never a path')
    await t.rejects(store.putChallenge('../x', 'y'), /not base64url/)
    await store.removeChallenge('tok_EN-1')
    t.equal(await store.challenge('tok_EN-1'), null)
  })
})

t.test('the challenge route and the event log', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = resolveConfig({ tls: { mode: 'acme', dir, acme: { domains: ['a.test'], email: 'a@a.test', agreeTos: true, directory: 'https://127.0.0.1:1/dir' } } }).tls
  if (config === false) throw new Error('no tls')
  const source = acmeSource(config)
  t.ok(isAcmeSource(source))
  t.notOk(isAcmeSource(selfSignedSource(config)))
  await new AcmeStore(dir, 'https://127.0.0.1:1/dir').putChallenge('abc', 'abc.xyz')

  const lines: string[] = []
  const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => { lines.push(line) } } } })
  acmeChallenges(app, source)
  acmeChallenges(app, selfSignedSource(config)) // another kind of source: nothing registered twice
  t.teardown(() => app.close())
  const found = await app.inject('/.well-known/acme-challenge/abc')
  t.equal(found.statusCode, 200)
  t.equal(found.body, 'abc.xyz')
  const unknown = await app.inject('/.well-known/acme-challenge/nope')
  t.equal(unknown.statusCode, 404)
  const traversal = await app.inject('/.well-known/acme-challenge/..%2F..%2Fkey.pem')
  t.equal(traversal.statusCode, 404, 'a token that is a path gets 404')

  const at = new Date('2026-01-01T00:00:00Z')
  const later = new Date('2026-01-02T00:00:00Z')
  const state = acmeLogState()
  const log = (event: AcmeEvent): void => logAcmeEvent(app.log, event, state)
  log({ type: 'ordering', name: 'a.test', domains: ['a.test'], reason: 'no certificate stored yet' })
  log({ type: 'issued', name: 'a.test', domains: ['a.test'], fingerprint: 'AA', notAfter: at, renewAt: at, durationMs: 1200 })
  log({ type: 'picked-up', name: 'a.test', fingerprint: 'AA', notAfter: at, from: 'Redis' })
  log({ type: 'checked', name: 'a.test', fingerprint: 'AA', renewAt: at, nextCheck: at, ari: true })
  log({ type: 'lock-busy', name: 'a.test', holder: { owner: '7@h', since: at, expires: later }, retryAt: at })
  log({ type: 'lock-lost', name: 'a.test', error: 'lease ran out' })
  log({ type: 'order-failed', name: 'a.test', domains: ['a.test'], error: 'rate limited', problem: { type: 'urn:ietf:params:acme:error:rateLimited' }, attempt: 2, retryAt: at })
  log({ type: 'storage', state: 'down', where: '10.0.0.5:6379', reason: 'ECONNREFUSED' })
  log({ type: 'storage', state: 'up', where: '10.0.0.5:6379', downMs: 3100 })
  log({ type: 'storage-unavailable', name: 'a.test', error: 'Redis is down', retryAt: at, serving: 'stored' })
  log({ type: 'storage-unavailable', name: 'a.test', error: 'Redis is down', retryAt: at, serving: 'stored' })
  log({ type: 'storage-rejected', name: 'a.test', error: 'failed authentication' })
  log({ type: 'renewal-info', name: 'a.test', window: { start: at, end: later }, renewAt: at, explanationUrl: null })
  log({ type: 'on-demand-allowed', name: 'shop.example' })
  for (const reason of ['denied', 'busy', 'rate-limit', 'renewal-denied'] as const) log({ type: 'on-demand-refused', name: 'x.example', reason })
  log({ type: 'on-demand-deferred', name: 'kept.example', reason: 'busy', attempt: 2, retryAt: later })
  const parsed = lines.map((line) => JSON.parse(line) as { level: number, msg: string, securityEvent?: string, problem?: unknown, reason?: string })
  const failed = parsed.find((line) => line.securityEvent === 'acme.order-failed')
  t.equal(failed?.level, 40, 'acme.order-failed is a security event at warn')
  t.same(failed?.problem, { type: 'urn:ietf:params:acme:error:rateLimited' }, 'carrying the problem document')
  t.match(failed?.msg, /attempt 2.*still serving the current certificate.*rate limited/)
  for (const text of ['ACME: ordering', 'ACME: certificate issued', 'ACME: serving the certificate for a.test that another instance stored in Redis',
    'ACME: certificate for a.test not due', 'ACME: another instance (7@h) is ordering a.test', 'ACME: the lock for a.test was lost',
    'TLS storage: Redis at 10.0.0.5:6379 is unreachable (ECONNREFUSED)', 'TLS storage: Redis at 10.0.0.5:6379 is back after 3100 ms',
    'ACME: the CA suggests renewing a.test between', 'ACME: on-demand name shop.example allowed']) {
    t.ok(parsed.some((line) => line.msg.startsWith(text)), text)
  }
  const unavailable = parsed.filter((line) => line.msg.startsWith('ACME: cannot check a.test'))
  t.same(unavailable.map((line) => line.level), [40, 20], 'a storage outage is logged at warn once per certificate, then at debug')
  t.equal(parsed.find((line) => line.msg.startsWith('TLS storage: Redis at 10.0.0.5:6379 is unreachable'))?.level, 50, 'the outage itself at error')
  t.equal(parsed.find((line) => line.securityEvent === 'tls.storage-rejected')?.level, 40, 'a rejected stored value is a security event')
  t.same(parsed.filter((line) => line.securityEvent === 'acme.on-demand-refused').map((line) => line.reason), ['denied', 'busy', 'rate-limit', 'renewal-denied'],
    'each on-demand refusal is a security event')
  const deferred = parsed.find((line) => line.msg.startsWith('ACME: the ask check gave no answer before renewing the on-demand certificate for "kept.example"'))
  t.equal(deferred?.level, 40, 'a renewal deferred for want of an answer from the ask check is logged at warn')
  t.match(deferred?.msg, /too many ask checks are running, attempt 2\); it keeps serving, asking again at 2026-01-02T00:00:00.000Z/)
})

t.test('ACME_CA_FILE without a certificate in it stops the start', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'x'))
  writeFileSync(join(dir, 'x', 'ca.pem'), 'not a certificate')
  const config = resolveConfig({ tls: { mode: 'acme', dir, acme: { domains: ['a.test'], email: 'a@a.test', agreeTos: true, caFile: join(dir, 'x', 'ca.pem') } } }).tls
  if (config === false) throw new Error('no tls')
  await t.rejects(acmeSource(config).load(), /ACME_CA_FILE: .* holds no PEM certificate/)
  t.equal(readFileSync(join(dir, 'x', 'ca.pem'), 'utf8'), 'not a certificate')
})

t.test('a re-read of the storage (another instance stored something) never takes the place of a scheduled check', async (t) => {
  // Before: the re-read borrowed the check's slot, so a check due while it ran was dropped, and
  // nothing was scheduled again: a certificate waiting for a lock waited forever.
  const dir = tempDir(undefined, t)
  const files = fileStorage(dir)
  const listeners = new Set<(key: string) => void>()
  let slow = false
  const storage: Storage = {
    ...files,
    description: 'slow file storage',
    async load (key) {
      if (slow && key.endsWith('/cert.pem')) await new Promise((resolve) => setTimeout(resolve, 800))
      return await files.load(key)
    },
    watch (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
  const config = resolveConfig({ tls: { mode: 'acme', dir, storage, acme: { domains: ['busy.test'], email: 'a@a.test', agreeTos: true, directory: 'https://127.0.0.1:1/dir', retryDelay: 0.3 } } }).tls
  if (config === false) throw new Error('no tls')
  const store = new AcmeStore(storage, config.acme.directory)
  const held = await store.lock('busy.test')
  if (!isLease(held)) throw new Error('the lock was not free')
  t.teardown(() => store.unlock(held))
  const events: AcmeEvent[] = []
  const source = acmeSource(config, { onEvent (event) { events.push(event) } })
  t.teardown(() => source.stop())
  await source.load()
  const lockBusy = (): number => events.filter((event) => event.type === 'lock-busy').length
  // Polled with a timer that keeps the process alive: the source's own timers are unref'd, and a
  // test awaiting only them could see the event loop empty and end unfinished (it did, on Node 26).
  const until = async (condition: () => boolean, ms: number): Promise<void> => {
    for (const end = Date.now() + ms; !condition() && Date.now() < end;) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  source.start({ update: () => {}, error: () => {} })
  await until(() => lockBusy() >= 1, 10_000)
  t.ok(lockBusy() >= 1, 'the first check found the lock held')
  // Once that check is over (its next one is due 300 ms later), another instance writes: the source
  // re-reads, slowly, over the time its next check is due.
  slow = true
  const before = lockBusy()
  for (const listener of listeners) listener(store.certificateKey('busy.test'))
  // Bounded: without the fix the next lock-busy never comes.
  await until(() => lockBusy() > before, 5000)
  t.ok(lockBusy() > before, 'the check due during the re-read still ran, and looked at the lock again')
  t.ok(source.nextCheck() !== null, 'and the next one is scheduled')
})
