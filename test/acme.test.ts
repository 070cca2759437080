/**
 * TLS_MODE=acme against a real pebble with real HTTP-01 validation: the temporary certificate at
 * once, pebble's certificate within seconds, reuse after a restart, the problem document of a
 * refused order, and two instances sharing TLS_DIR.
 */
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { startApp, tempDir, type StartedApp } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { request } from './helpers/http.ts'
import { acmeOptions, presented, reloaded, startPebble } from './helpers/pebble.ts'
import { AcmeStore, directoryFolder } from '../tls/acme-store.ts'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { channelNames, type AcmeMessage } from '../diagnostics.ts'

/** A TLS_DIR removed in the test's teardown. */
function scratch (t: { teardown (fn: () => void): void }): string {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('TLS_MODE=acme against pebble', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble({ blocklist: ['blocked.test'] })
  t.teardown(() => pebble.close())
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const routes = (app: StartedApp['app']): void => { app.get('/', async () => 'hello') }

  let issued = ''
  t.test('serves a temporary certificate at once, then pebble\'s, validated over real HTTP-01', async (t) => {
    const published: AcmeMessage[] = []
    const listener = (message: unknown): void => { published.push(message as AcmeMessage) }
    subscribe(channelNames.acme, listener)
    t.teardown(() => unsubscribe(channelNames.acme, listener))
    const started = Date.now()
    const s = await startApp(acmeOptions(pebble, dir, ['app.test+www.app.test'], pebble.httpPort), routes)
    t.teardown(() => s.close())
    const [temporary] = await presented(s.port, 'app.test')
    const startedIn = Date.now() - started
    t.ok(temporary, 'the app answers TLS right after listen')
    t.equal(temporary?.issuer, temporary?.subject, 'with a self-signed temporary certificate')
    t.match(temporary?.subjectAltName, /DNS:app\.test/, 'covering the ACME domains')
    t.equal(s.app.tls.status().selfSigned, true)
    t.ok(startedIn < 5000, `started in ${startedIn} ms, without waiting for the CA`)

    const update = await s.logs.waitFor(reloaded, 30_000)
    const issuedIn = Date.now() - started
    t.equal(update.reason, 'ACME certificate issued')
    t.comment(`pebble's certificate served ${issuedIn} ms after start`)
    t.ok(issuedIn < 30_000)

    const { root, intermediate } = await pebble.issuers()
    const chain = await presented(s.port, 'www.app.test')
    const leaf = chain[0] as X509Certificate
    const issuer = new X509Certificate(intermediate)
    t.ok(leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey), 'the leaf is signed by pebble\'s intermediate')
    t.ok(issuer.verify(new X509Certificate(root).publicKey), 'which pebble\'s root signed')
    t.match(leaf.subjectAltName, /DNS:app\.test/)
    t.match(leaf.subjectAltName, /DNS:www\.app\.test/)
    t.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'the certificate key is ECDSA P-256')

    const verified = await request(`https://127.0.0.1:${s.port}/`, { ca: root, servername: 'app.test', headers: { host: 'app.test' } })
    t.equal(verified.status, 200, 'a client trusting only pebble\'s root connects, with host name checks')
    t.equal(verified.body, 'hello')
    t.equal(s.app.tls.status().selfSigned, false)
    t.equal(s.app.tls.status().fingerprint, leaf.fingerprint256)

    const ordering = s.logs.lines.filter((line) => String(line.msg).startsWith('ACME: ordering'))
    t.equal(ordering.length, 1, 'one order for the two names that share a certificate')
    t.same(published.filter((m) => m.action !== 'next-attempt'), [{ action: 'order-succeeded', names: ['app.test', 'www.app.test'] }], 'published on the acme channel')
    const next = published.at(-1)
    t.ok(next?.action === 'next-attempt' && next.at !== undefined && next.at.getTime() > Date.now(), 'then the next check, in the future')

    const folder = join(dir, 'acme', directoryFolder(pebble.directory))
    for (const name of ['account-key.pem', 'certificates/app.test/key.pem']) {
      t.equal(statSync(join(folder, name)).mode & 0o777, 0o600, `${name} is readable by its owner only`)
    }
    const stored = new X509Certificate(readFileSync(join(folder, 'certificates', 'app.test', 'cert.pem')))
    t.equal(stored.fingerprint256, leaf.fingerprint256, 'the certificate is stored under TLS_DIR/acme/')
    issued = leaf.fingerprint256

    const unknown = await request(`http://127.0.0.1:${pebble.httpPort}/.well-known/acme-challenge/nope`, { headers: { host: 'app.test' } })
    t.equal(unknown.status, 404, 'an unknown challenge token gets 404 from the redirect listener')
    const other = await request(`http://127.0.0.1:${pebble.httpPort}/other`, { headers: { host: 'app.test' } })
    t.equal(other.status, 307, 'every other path still redirects')
  })

  t.test('a restart serves the stored certificate at once and orders nothing', async (t) => {
    const s = await startApp(acmeOptions(pebble, dir, ['app.test+www.app.test'], pebble.httpPort), routes)
    t.teardown(() => s.close())
    const [leaf] = await presented(s.port, 'app.test')
    t.equal(leaf?.fingerprint256, issued, 'the stored certificate from the first run')
    const checked = await s.logs.waitFor((line) => /^ACME: certificate for app\.test not due/.test(String(line.msg)), 10_000)
    t.ok(checked.renewAt, `checked at start: renewal due ${String(checked.renewAt)}`)
    t.equal(checked.ari, false, 'pebble 2.4 offers no renewal information: renewal by the lifetime')
    t.same(s.logs.lines.filter((line) => String(line.msg).startsWith('ACME: ordering')), [], 'no new order')
  })

  t.test('a name added to ACME_DOMAINS: the stored certificate serves until one covering it arrives', async (t) => {
    const s = await startApp(acmeOptions(pebble, dir, ['app.test+www.app.test+new.app.test'], pebble.httpPort), routes)
    t.teardown(() => s.close())
    const [before] = await presented(s.port, 'app.test')
    t.equal(before?.fingerprint256, issued, 'the stored certificate at once, not a temporary one')
    const update = await s.logs.waitFor(reloaded, 30_000)
    t.equal(update.reason, 'ACME certificate renewed')
    const ordering = s.logs.lines.find((line) => String(line.msg).startsWith('ACME: ordering'))
    t.match(ordering?.reason, /does not cover new\.app\.test/)
    const [after] = await presented(s.port, 'new.app.test')
    t.match(after?.subjectAltName, /DNS:new\.app\.test/)
  })

  t.test('failed orders against pebble: logged with the problem document, retried later, never leaving the server without a certificate', async (t) => {
    t.test('a refused order: rejectedIdentifier, doubling delays, the temporary certificate keeps serving', async (t) => {
      const published: AcmeMessage[] = []
      const listener = (message: unknown): void => { if ((message as AcmeMessage).names.includes('blocked.test')) published.push(message as AcmeMessage) }
      subscribe(channelNames.acme, listener)
      t.teardown(() => unsubscribe(channelNames.acme, listener))
      const s = await startApp(acmeOptions(pebble, scratch(t), ['blocked.test'], 0))
      t.teardown(() => s.close())
      await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed' && line.attempt === 3, 10_000)
      const failed = published.findIndex((m) => m.action === 'order-failed')
      t.same(published.slice(failed, failed + 2).map((m) => m.action), ['order-failed', 'next-attempt'], 'each failure and the next attempt are published on the acme channel')
      t.ok(published[failed + 1]?.at instanceof Date)
      const failures = s.logs.events('acme.order-failed')
      const problem = failures[0]?.problem as { type?: string, detail?: string } | undefined
      t.equal(problem?.type, 'urn:ietf:params:acme:error:rejectedIdentifier', 'the ACME problem document is logged')
      t.match(problem?.detail, /blocked\.test/)
      t.equal(failures[0]?.level, 40, 'at warn')
      t.same(failures.map((line) => line.domains), [['blocked.test'], ['blocked.test'], ['blocked.test']])
      const delays = failures.map((line) => Date.parse(String(line.retryAt)) - Number(line.time))
      t.ok(delays.every((delay, i) => i === 0 || delay > (delays[i - 1] as number) * 1.5), `each delay doubles: ${delays.join(', ')} ms`)
      t.equal(s.app.tls.status().selfSigned, true, 'the temporary certificate is still served')
      const [served] = await presented(s.port, 'blocked.test')
      t.equal(served?.issuer, served?.subject)
    })

    t.test('a failed HTTP-01 validation: the challenge\'s problem document', async (t) => {
      // Nothing answers on the port pebble validates: the redirect listener is elsewhere.
      const s = await startApp(acmeOptions(pebble, scratch(t), ['unreachable.test'], 0))
      t.teardown(() => s.close())
      const failure = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed', 15_000)
      const problem = failure.problem as { type?: string, detail?: string } | undefined
      t.equal(problem?.type, 'urn:ietf:params:acme:error:connection', 'pebble could not connect to HTTP_PORT')
      t.match(failure.error, /refused|connect/i)
      t.equal(s.app.tls.status().selfSigned, true)
    })

    t.test('without ACME_CA_FILE, pebble\'s private CA is not trusted, and the message says what to set', async (t) => {
      const s = await startApp(acmeOptions(pebble, scratch(t), ['noca.test'], 0, { caFile: undefined }))
      t.teardown(() => s.close())
      const failure = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed', 10_000)
      t.match(failure.error, /ACME_CA_FILE/)
      t.equal(failure.problem, null, 'no problem document: the server was never reached')
    })

    t.test('an unreadable ACME_CA_FILE stops the start with a message naming it', async (t) => {
      await t.rejects(startApp(acmeOptions(pebble, scratch(t), ['x.test'], 0, { caFile: '/nonexistent/ca.pem' })),
        { code: 'ERR_SECURE_HTTPS_CERTIFICATE', message: /ACME_CA_FILE: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/ })
    })
  })

  t.test('two instances sharing TLS_DIR: one orders, the other picks the certificate up', async (t) => {
    const dir = tempDir()
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    // Only the first listens where pebble validates; if the second wins the lock, the first answers
    // the challenge from TLS_DIR.
    const [a, b] = await Promise.all([
      startApp(acmeOptions(pebble, dir, ['shared.test'], pebble.httpPort)),
      startApp(acmeOptions(pebble, dir, ['shared.test'], 0))
    ])
    t.teardown(() => a.close())
    t.teardown(() => b.close())
    const [updateA, updateB] = await Promise.all([a.logs.waitFor(reloaded, 30_000), b.logs.waitFor(reloaded, 30_000)])
    const orders = [a, b].map((s) => s.logs.lines.filter((line) => String(line.msg).startsWith('ACME: ordering')).length)
    t.same(orders.sort(), [0, 1], 'exactly one instance ordered')
    t.same([updateA.reason, updateB.reason].sort(), ['ACME certificate issued', 'ACME certificate picked up from TLS_DIR (ordered by another instance)'])
    const waited = [a, b].some((s) => s.logs.lines.some((line) => String(line.msg).startsWith('ACME: another instance')))
    t.ok(waited, 'the other saw the lock and waited')
    t.equal(a.app.tls.status().fingerprint, b.app.tls.status().fingerprint, 'both serve the same certificate')
    const [leafA] = await presented(a.port, 'shared.test')
    const [leafB] = await presented(b.port, 'shared.test')
    t.equal(leafA?.fingerprint256, leafB?.fingerprint256)
    const { intermediate } = await pebble.issuers()
    t.ok(leafA?.checkIssued(new X509Certificate(intermediate)), 'issued by pebble')

    // Whichever instance the CA reaches answers a challenge the other one published.
    const store = new AcmeStore(dir, pebble.directory)
    await store.putChallenge('published-by-a', 'published-by-a.thumbprint')
    const answer = await request(`${b.redirectUrl as string}/.well-known/acme-challenge/published-by-a`, { headers: { host: 'shared.test' } })
    t.equal(answer.status, 200, 'an instance answers a challenge published in TLS_DIR by another')
    t.equal(answer.body, 'published-by-a.thumbprint')
    t.equal(answer.headers['content-type'], 'application/octet-stream')
    await store.removeChallenge('published-by-a')
    const gone = await request(`${b.redirectUrl as string}/.well-known/acme-challenge/published-by-a`, { headers: { host: 'shared.test' } })
    t.equal(gone.status, 404, 'and forgets it once withdrawn')
  })
})
