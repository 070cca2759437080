/**
 * The pure parts of TLS_MODE=acme: configuration messages, renewal time, backoff, problem
 * documents, the on-disk store and its lock, and the challenge route's answers.
 */
import t from 'tap'
import Fastify from 'fastify'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, resolveConfig } from '../index.js'
import { acmeChallenges, logAcmeEvent } from '../plugins/acme-challenge.js'
import { problemIn, parseRetryAfter } from '../tls/acme-client.js'
import { acmeSource, isAcmeSource, renewalTime, retryDelay } from '../tls/acme-source.js'
import { AcmeStore, directoryFolder, LOCK_STALE_AFTER } from '../tls/acme-store.js'
import { generateSelfSigned } from '../tls/self-signed.js'
import { selfSignedSource } from '../tls/self-signed-source.js'
import { tempDir } from './helpers/app.js'

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
    t.equal(await store.readPair(['a.test']), null, 'nothing stored yet')
    const good = await generateSelfSigned(['a.test'])
    await store.writePair(good.key, good.cert)
    const stored = await store.readPair(['a.test', 'b.test'])
    t.equal(stored?.inDate, true)
    t.same(stored?.missing, ['b.test'], 'names the configuration added since')
    t.equal(statSync(join(store.folder, 'key.pem')).mode & 0o777, 0o600, 'the key is private')

    const expired = await generateSelfSigned(['a.test'], 1, Date.now() - 10 * DAY)
    await store.writePair(expired.key, expired.cert)
    const old = await store.readPair(['a.test'])
    t.equal(old?.inDate, false, 'an expired certificate is returned, flagged, never dropped')
    t.equal(old?.pair.cert, expired.cert)

    const other = await generateSelfSigned(['a.test'])
    writeFileSync(join(store.folder, 'key.pem'), other.key)
    t.equal(await store.readPair(['a.test']), null, 'a key that does not match (a writer between two files) is not served')
    writeFileSync(join(store.folder, 'cert.pem'), 'garbage')
    t.equal(await store.readPair(['a.test']), null, 'nor an unreadable certificate')
  })

  t.test('the lock', async (t) => {
    const lock = await store.lock()
    t.ok('release' in lock, 'taken when free')
    const holder = await store.lock()
    t.same('release' in holder ? null : { pid: holder.pid, host: holder.host }, { pid: process.pid, host: hostname() }, 'busy while held, naming its holder')
    if ('release' in lock) await lock.release()
    t.notOk(existsSync(join(store.folder, 'lock')), 'released')

    const path = join(store.folder, 'lock')
    writeFileSync(path, JSON.stringify({ pid: process.pid, host: 'another-host', since: new Date().toISOString() }))
    t.notOk('release' in await store.lock(), 'a fresh lock from another host is respected')
    const old = new Date(Date.now() - LOCK_STALE_AFTER - 60_000)
    utimesSync(path, old, old)
    const taken = await store.lock()
    t.ok('release' in taken, 'one not refreshed for ten minutes is taken over')
    writeFileSync(path, JSON.stringify({ pid: process.pid, host: 'another-host', since: 'x', token: 'theirs' }))
    if ('release' in taken) await taken.release()
    t.ok(existsSync(path), 'releasing never removes a lock that someone else took since')

    writeFileSync(path, '{"pid": 1')
    t.notOk('release' in await store.lock(), 'a half-written lock is respected while fresh')
    utimesSync(path, old, old)
    t.ok('release' in await store.lock(), 'and taken over once stale')
    rmSync(path)
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
  logAcmeEvent(app.log, { type: 'ordering', domains: ['a.test'], reason: 'no certificate stored yet' })
  logAcmeEvent(app.log, { type: 'issued', domains: ['a.test'], fingerprint: 'AA', notAfter: at, renewAt: at, durationMs: 1200 })
  logAcmeEvent(app.log, { type: 'picked-up', fingerprint: 'AA', notAfter: at })
  logAcmeEvent(app.log, { type: 'checked', fingerprint: 'AA', renewAt: at, nextCheck: at })
  logAcmeEvent(app.log, { type: 'lock-busy', holder: { pid: 7, host: 'h', since: at.toISOString() }, retryAt: at })
  logAcmeEvent(app.log, { type: 'order-failed', domains: ['a.test'], error: 'rate limited', problem: { type: 'urn:ietf:params:acme:error:rateLimited' }, attempt: 2, retryAt: at })
  const parsed = lines.map((line) => JSON.parse(line) as { level: number, msg: string, securityEvent?: string, problem?: unknown })
  const failed = parsed.find((line) => line.securityEvent === 'acme.order-failed')
  t.equal(failed?.level, 40, 'acme.order-failed is a security event at warn')
  t.same(failed?.problem, { type: 'urn:ietf:params:acme:error:rateLimited' }, 'carrying the problem document')
  t.match(failed?.msg, /attempt 2.*still serving the current certificate.*rate limited/)
  for (const text of ['ACME: ordering', 'ACME: certificate issued', 'ACME: serving the certificate another instance', 'ACME: certificate not due', 'ACME: another instance (pid 7 on h)']) {
    t.ok(parsed.some((line) => line.msg.startsWith(text)), text)
  }
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
