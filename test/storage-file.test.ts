/**
 * The filesystem storage (TLS_DIR): the storage contract, keys that can never leave TLS_DIR
 * (fuzzed), private folders and files, and a holder that lost its lease while paused.
 */
import fc from 'fast-check'
import { chmodSync, existsSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join, resolve, sep } from 'node:path'
import t from 'tap'
import { fileStorage } from '../storage/file.ts'
import { isLease, keyProblem } from '../storage/storage.ts'
import { tempDir } from './helpers/app.ts'
import { storageContract } from './helpers/storage-contract.ts'
import { growth } from './helpers/linear.ts'

t.test('the storage contract', async (t) => {
  const dir = tempDir(undefined, t)
  await storageContract(t, async () => fileStorage(dir))
})

t.test('keys map to files inside TLS_DIR, and nowhere else', async (t) => {
  const dir = tempDir(undefined, t)
  const storage = fileStorage(dir)
  const root = resolve(dir)
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (key) => {
    let path: string
    try {
      path = storage.pathOf(key)
    } catch (error) {
      // Refused: with the storage's own error, and only when the key is not plain.
      return (error as { code?: string }).code === 'ERR_SECURE_HTTPS_STORAGE' && keyProblem(key) !== null
    }
    return keyProblem(key) === null && path.startsWith(root + sep) && resolve(path) === path
  }), { numRuns: 5000 })
  // Keys built from segments that look like traversal: refused, or inside the root.
  const segment = fc.constantFrom('..', '.', '', 'a', '_', 'a.b', '-x', '..a', 'a..', '%2e%2e', '~')
  fc.assert(fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), (segments) => {
    const key = segments.join('/')
    try {
      return storage.pathOf(key).startsWith(root + sep)
    } catch {
      return keyProblem(key) !== null
    }
  }), { numRuns: 2000 })
  t.pass('no key reaches outside TLS_DIR')
})

t.test('every ACME challenge token is a storage key: base64url, a leading - or _ included', async (t) => {
  // Regression: a token starting with "-" (about one order in 64 per challenge) was refused, and the
  // order failed with ERR_SECURE_HTTPS_STORAGE.
  const { randomBytes } = await import('node:crypto')
  for (const token of ['-b04ycHChFVWixlTJ36bhxJt_lMZoqEjbgdLBm-19eo', '_leading-underscore', '--', ...Array.from({ length: 200 }, () => randomBytes(32).toString('base64url'))]) {
    t.equal(keyProblem(`acme/127.0.0.1_14000/challenges/${token}`), null, token)
  }
  for (const bad of ['acme/./x', 'acme/../x', 'acme/.hidden', 'acme//x', '/acme', 'acme/x/']) t.not(keyProblem(bad), null, `${bad} refused`)
  const root = tempDir('secure-https-storage-token-', t)
  const storage = fileStorage(root)
  await storage.store('acme/dir/challenges/-token', 'answer')
  t.equal(await storage.load('acme/dir/challenges/-token'), 'answer', 'stored and read back under TLS_DIR')
})

t.test('checking a key is linear in its length', async (t) => {
  // Adversarial shapes for the segment pattern: long runs that fail at the very end.
  const shapes: Array<[string, (n: number) => string]> = [
    ['one long segment', (n) => `${'a'.repeat(n - 1)}!`],
    ['many segments', (n) => `${'a/'.repeat(Math.floor((n - 1) / 2))}.`],
    ['dots and underscores', (n) => `${'_.'.repeat(Math.floor((n - 1) / 2))}/`]
  ]
  for (const [name, shape] of shapes) {
    // Linear work fits an exponent near 1; a quadratic check would fit 2 (the margin is for GC).
    const grown = growth(shape, keyProblem, [125, 250, 500, 1000])
    t.ok(grown.exponent < 1.5, `${name}: time grows as ${grown.text}`)
  }
})

t.test('folders are created private, files 0600, and a key another user could read is refused', async (t) => {
  const dir = tempDir(undefined, t)
  const storage = fileStorage(join(dir, 'tls'))
  await storage.store('acme/x/certificates/a.test/key.pem', 'secret')
  t.equal(statSync(join(dir, 'tls')).mode & 0o777, 0o700)
  t.equal(statSync(join(dir, 'tls', 'acme', 'x', 'certificates')).mode & 0o777, 0o700)
  t.equal(statSync(join(dir, 'tls', 'acme/x/certificates/a.test/key.pem')).mode & 0o777, 0o600)
  writeFileSync(join(dir, 'tls', 'acme/x/certificates/a.test/key.pem'), 'planted')
  chmodSync(join(dir, 'tls', 'acme/x/certificates/a.test/key.pem'), 0o644)
  await t.rejects(storage.load('acme/x/certificates/a.test/key.pem'), { code: 'ERR_SECURE_HTTPS_INSECURE_STORAGE' }, 'a key readable by others is refused')
  writeFileSync(join(dir, 'tls', 'acme/x/certificates/a.test/cert.pem'), 'public', { mode: 0o644 })
  t.equal(await storage.load('acme/x/certificates/a.test/cert.pem'), 'public', 'a certificate readable by others is fine')
  chmodSync(join(dir, 'tls', 'acme/x/certificates/a.test/cert.pem'), 0o666)
  await t.rejects(storage.load('acme/x/certificates/a.test/cert.pem'), { code: 'ERR_SECURE_HTTPS_INSECURE_STORAGE' }, 'but not one others can write')
  t.same(await storage.list('acme/x/certificates/a.test'), ['acme/x/certificates/a.test/cert.pem', 'acme/x/certificates/a.test/key.pem'], 'no temporary or lock files listed')
})

t.test('a holder that lost its lease while paused cannot overwrite the next holder\'s work', async (t) => {
  const dir = tempDir(undefined, t)
  const paused = fileStorage(dir)
  const next = fileStorage(dir)
  t.teardown(() => paused.close())
  t.teardown(() => next.close())
  const lease = await paused.lock('acme/x/locks/a.test')
  if (!isLease(lease)) throw new Error('the lock was not free')
  // The holder stops renewing (a stopped VM): its lock file ages past the lease.
  const path = join(dir, 'acme', 'x', 'locks', 'a.test.lock')
  const old = new Date(Date.now() - 61_000)
  utimesSync(path, old, old)
  const taken = await next.lock('acme/x/locks/a.test')
  t.ok(isLease(taken), 'another instance takes the lock over')
  if (!isLease(taken)) return
  await next.store('acme/x/certificates/a.test/cert.pem', 'the new holder\'s', { guard: taken })
  await t.rejects(paused.store('acme/x/certificates/a.test/cert.pem', 'the paused holder\'s', { guard: lease }), { code: 'ERR_SECURE_HTTPS_LOCK_LOST' })
  t.equal(await next.load('acme/x/certificates/a.test/cert.pem'), 'the new holder\'s', 'the late write is refused')
  t.notOk(existsSync(`${join(dir, 'acme/x/certificates/a.test/cert.pem')}.tmp`), 'and leaves nothing behind')
  await paused.unlock(lease)
  t.ok(existsSync(path), 'unlocking a lost lease leaves the new holder\'s lock alone')
  await next.unlock(taken)
})
