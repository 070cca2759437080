/**
 * The behaviour every `Storage` implementation owes the ACME engine, run against the filesystem
 * and Redis implementations alike (test/storage-file.test.ts, test/storage-redis.test.ts).
 */
import type { Test } from 'tap'
import { isLease, type Lease, type Storage } from '../../storage/storage.ts'

type T = Test

/**
 * `open()` returns a fresh storage over the same data each time (another instance of a fleet).
 */
export async function storageContract (t: T, open: () => Promise<Storage>): Promise<void> {
  const storage = await open()
  t.teardown(() => storage.close())

  await t.test('store, load, exists, stat, delete', async (t) => {
    t.equal(await storage.load('c/a/value.pem'), null, 'a missing value loads as null')
    t.equal(await storage.exists('c/a/value.pem'), false)
    t.equal(await storage.stat('c/a/value.pem'), null)
    const before = Date.now()
    await storage.store('c/a/value.pem', 'first')
    await storage.store('c/a/value.pem', 'second\nline')
    t.equal(await storage.load('c/a/value.pem'), 'second\nline', 'the last value written')
    t.equal(await storage.exists('c/a/value.pem'), true)
    const info = await storage.stat('c/a/value.pem')
    t.equal(info?.key, 'c/a/value.pem')
    t.equal(info?.terminal, true)
    t.ok((info?.modified.getTime() ?? 0) >= before - 1000, 'with its time of writing')
    t.equal((await storage.stat('c/a'))?.terminal, false, 'a prefix of other keys is not a value')
    await storage.delete('c/a/value.pem')
    t.equal(await storage.load('c/a/value.pem'), null)
    await storage.delete('c/a/value.pem')
    t.ok(true, 'deleting a missing value is not an error')
    const other = await open()
    t.teardown(() => other.close())
    await storage.store('c/shared', 'from one instance')
    t.equal(await other.load('c/shared'), 'from one instance', 'another instance reads what one stored')
  })

  await t.test('list: direct children or every key below, sorted', async (t) => {
    for (const key of ['l/b/cert.pem', 'l/b/key.pem', 'l/a/cert.pem', 'l/top', 'lx/other']) await storage.store(key, key)
    t.same(await storage.list('l'), ['l/a', 'l/b', 'l/top'])
    t.same(await storage.list('l', true), ['l/a/cert.pem', 'l/b/cert.pem', 'l/b/key.pem', 'l/top'])
    t.same(await storage.list('l/b'), ['l/b/cert.pem', 'l/b/key.pem'])
    t.same(await storage.list('nothing/here'), [])
    t.ok((await storage.list('')).includes('lx'), 'the root lists the first segments')
  })

  await t.test('keys that are not plain paths are refused before anything is touched', async (t) => {
    for (const key of ['', '../x', 'a/../b', '/abs', 'a//b', '.hidden', 'a/.', 'a/b/', 'a\\b', 'a b', 'é', 'a\0b', 'x'.repeat(1025)]) {
      await t.rejects(storage.store(key, 'x'), { code: 'ERR_SECURE_HTTPS_STORAGE' }, JSON.stringify(key.slice(0, 20)))
      await t.rejects(storage.load(key), { code: 'ERR_SECURE_HTTPS_STORAGE' })
      await t.rejects(storage.lock(key), { code: 'ERR_SECURE_HTTPS_STORAGE' })
    }
  })

  await t.test('locks: exclusive leases, released by their holder only', async (t) => {
    const other = await open()
    t.teardown(() => other.close())
    const lease = await storage.lock('locks/one')
    if (!isLease(lease)) throw new Error('the lock was not free')
    const busy = await other.lock('locks/one')
    t.notOk(isLease(busy), 'another instance finds it held')
    if (!isLease(busy)) {
      t.ok(busy.owner.endsWith(`@${(await import('node:os')).hostname()}`), `the holder is named (${busy.owner})`)
      t.ok(busy.expires === null || busy.expires.getTime() > Date.now(), 'with the end of its lease')
    }
    t.ok(isLease(await other.lock('locks/two')), 'another lock is independent')
    await other.unlock({ ...lease, token: 'not-the-holder' } as Lease)
    t.notOk(isLease(await other.lock('locks/one')), 'a wrong token releases nothing')
    await storage.unlock(lease)
    const next = await other.lock('locks/one')
    t.ok(isLease(next), 'free once released')
    if (isLease(next)) {
      t.ok(next.fence > lease.fence, `each grant has a higher fence (${lease.fence} then ${next.fence})`)
      await other.unlock(next)
    }
  })

  await t.test('a lease is kept alive by its holder past its lifetime', async (t) => {
    const other = await open()
    t.teardown(() => other.close())
    // A 900 ms lease, renewed every 300 ms, checked six times 300 ms apart: two lifetimes and more,
    // so it is held only if it was renewed. The renewals are the thing under test, not a
    // synchronization; a stall of up to 600 ms (a busy machine) still leaves the lease alive.
    const lease = await storage.lock('locks/kept', { ttl: 900 })
    if (!isLease(lease)) throw new Error('the lock was not free')
    const started = Date.now()
    for (let check = 0; check < 6; check++) {
      await new Promise((resolve) => setTimeout(resolve, 300))
      t.notOk(isLease(await other.lock('locks/kept', { ttl: 900 })), 'still held')
    }
    t.ok(Date.now() - started >= 1800, 'past two of its lifetimes')
    t.notOk(lease.signal.aborted, 'the holder was never told it lost it')
    await storage.unlock(lease)
  })

  await t.test('a guarded write lands while the lease is held', async (t) => {
    const lease = await storage.lock('locks/guard')
    if (!isLease(lease)) throw new Error('the lock was not free')
    await storage.store('g/value', 'guarded', { guard: lease })
    t.equal(await storage.load('g/value'), 'guarded')
    await storage.unlock(lease)
    await t.rejects(storage.store('g/value', 'late', { guard: lease }), { code: 'ERR_SECURE_HTTPS_LOCK_LOST' }, 'and is refused once released')
    t.equal(await storage.load('g/value'), 'guarded', 'leaving the value as it was')
  })
}
