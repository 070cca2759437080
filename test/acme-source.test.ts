/**
 * The ACME certificate source on its own (no Fastify: tls/ knows nothing of it) against a real
 * pebble, with a plain Node HTTP server answering HTTP-01: forced renewal, the lock shared with
 * another instance, and stopping in the middle of an order.
 */
import t from 'tap'
import { existsSync, rmSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { resolveConfig } from '../index.ts'
import { acmeSource, type AcmeCertificateSource, type AcmeEvent } from '../tls/acme-source.ts'
import { AcmeStore } from '../tls/acme-store.ts'
import { isLease } from '../storage/storage.ts'
import { lockScope } from '../storage/file.ts'
import type { CertificatePair } from '../tls/source.ts'
import type { TlsConfig } from '../schemas/tls.ts'
import { tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { acmeOptions, answerChallenges, startPebble, type Pebble } from './helpers/pebble.ts'

interface Run {
  source: AcmeCertificateSource
  events: AcmeEvent[]
  updates: Array<{ pair: CertificatePair, reason: string }>
  errors: Error[]
  /** Resolves with the first event of this type from now on (or already seen, when `seen`). */
  next (type: AcmeEvent['type'], timeout?: number): Promise<AcmeEvent>
}

function configFor (pebble: Pebble, dir: string, domain: string): TlsConfig {
  const config = resolveConfig(acmeOptions(pebble, dir, [domain], pebble.httpPort)).tls
  if (config === false) throw new Error('no tls config')
  return config
}

function run (config: TlsConfig): Run {
  const events: AcmeEvent[] = []
  const waiters: Array<{ type: string, resolve: (event: AcmeEvent) => void }> = []
  const source = acmeSource(config, {
    onEvent (event) {
      events.push(event)
      for (const waiter of waiters.splice(0)) {
        if (waiter.type === event.type) waiter.resolve(event)
        else waiters.push(waiter)
      }
    }
  })
  const result: Run = {
    source,
    events,
    updates: [],
    errors: [],
    next (type, timeout = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${type} event within ${timeout} ms: ${JSON.stringify(events)}`)), timeout)
        waiters.push({ type, resolve: (event) => { clearTimeout(timer); resolve(event) } })
      })
    }
  }
  return result
}

function startRun (r: Run): void {
  r.source.start({ update: (pair, reason) => r.updates.push({ pair, reason }), error: (error) => r.errors.push(error) })
}

t.test('the ACME source without Fastify', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble()
  t.teardown(() => pebble.close())
  const sources: AcmeCertificateSource[] = []
  // Where pebble validates HTTP-01: answered from whichever source is running.
  await answerChallenges(t, pebble, sources)
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  t.test('load() gives a temporary pair, start() the CA\'s, renew({ force }) a new one', async (t) => {
    const r = run(configFor(pebble, dir, 'source.test'))
    sources.push(r.source)
    t.teardown(() => r.source.stop())
    const temporary = await r.source.load()
    t.equal(temporary.info.selfSigned, true, 'a self-signed pair to start with')
    t.equal((await r.source.load()).cert, temporary.cert, 'the same one when asked again')
    const issued = r.next('issued')
    startRun(r)
    await issued
    t.equal(r.updates[0]?.reason, 'ACME certificate issued')
    t.equal(r.updates[0]?.pair.info.selfSigned, false)
    t.ok(r.source.nextCheck(), 'a next check is scheduled')
    t.equal((await r.source.load()).cert, r.updates[0]?.pair.cert, 'load() now returns the stored certificate')

    await r.source.renew({ force: true })
    t.equal(r.updates[1]?.reason, 'ACME certificate renewed', 'a forced renewal orders again')
    t.not(r.updates[1]?.pair.info.fingerprint, r.updates[0]?.pair.info.fingerprint)
    await r.source.renew()
    t.equal(r.updates.length, 2, 'a renewal that is not due orders nothing')
    t.same(r.errors, [])
    await r.source.stop()
    t.equal(r.source.nextCheck(), null, 'nothing scheduled once stopped')
  })

  t.test('a lock held by a live instance: wait, then pick up what it stored', async (t) => {
    const other = tempDir()
    t.teardown(() => rmSync(other, { recursive: true, force: true }))
    const config = configFor(pebble, other, 'source.test')
    const store = new AcmeStore(other, config.acme.directory)
    const lock = await store.lock('source.test')
    t.ok(isLease(lock), 'the "other instance" holds the lock')
    const r = run(config)
    t.teardown(() => r.source.stop())
    await r.source.load()
    const busy = r.next('lock-busy')
    startRun(r)
    const event = await busy
    t.equal(event.type === 'lock-busy' && event.holder.owner, `${process.pid}@${hostname()}`, 'the holder is named')
    t.equal(r.events.filter((e) => e.type === 'ordering').length, 0, 'no order while the lock is held')
    // The other instance stores its certificate (the one from the first test) and lets go.
    const first = new AcmeStore(dir, config.acme.directory)
    const stored = await first.readCertificate('source.test', ['source.test'])
    if (stored === null) throw new Error('no stored pair')
    const picked = r.next('picked-up')
    await store.writeCertificate('source.test', { names: ['source.test'], onDemand: false }, stored.pair.key, stored.pair.cert)
    if (isLease(lock)) await store.unlock(lock)
    await picked
    t.equal(r.updates[0]?.reason, 'ACME certificate picked up from TLS_DIR (ordered by another instance)')
    t.equal(r.updates[0]?.pair.info.fingerprint, stored.pair.info.fingerprint)
    t.equal(r.events.filter((e) => e.type === 'ordering').length, 0, 'and never ordered')
  })

  t.test('a lock left by a dead process on this host is taken over at once', async (t) => {
    const other = tempDir()
    t.teardown(() => rmSync(other, { recursive: true, force: true }))
    const config = configFor(pebble, other, 'stale.test')
    const store = new AcmeStore(other, config.acme.directory)
    await store.ensureFolder()
    const { mkdirSync, writeFileSync } = await import('node:fs')
    mkdirSync(join(store.folder, 'locks'), { recursive: true, mode: 0o700 })
    writeFileSync(join(store.folder, 'locks', 'stale.test.lock'), JSON.stringify({ owner: 'dead', pid: 2 ** 22 + 12345, host: hostname(), scope: lockScope(), token: 'dead', since: new Date().toISOString(), ttl: 60_000 }))
    const r = run(config)
    sources.push(r.source)
    t.teardown(() => r.source.stop())
    await r.source.load()
    const issued = r.next('issued')
    startRun(r)
    await issued
    await r.source.renew()
    t.equal(r.events.filter((e) => e.type === 'lock-busy').length, 0, 'no waiting for a dead holder')
    t.notOk(existsSync(join(store.folder, 'locks', 'stale.test.lock')), 'the lock is gone after the order')
  })

  t.test('stop() in the middle of an order: resolves promptly, releases the lock, reports nothing', async (t) => {
    const other = tempDir()
    t.teardown(() => rmSync(other, { recursive: true, force: true }))
    const config = configFor(pebble, other, 'stopping.test')
    const r = run(config)
    await r.source.load()
    const ordering = r.next('ordering')
    startRun(r)
    await ordering
    const started = Date.now()
    await r.source.stop()
    const took = Date.now() - started
    t.ok(took < 6000, `stop() took ${took} ms`)
    t.notOk(existsSync(join(new AcmeStore(other, config.acme.directory).folder, 'locks', 'stopping.test.lock')), 'the lock is released')
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.same(r.updates, [], 'no update after stop')
    t.same(r.events.filter((e) => e.type === 'order-failed'), [], 'and no failure reported for the aborted order')
  })
})
