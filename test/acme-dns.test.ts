/**
 * ACME_CHALLENGE=dns-01 against a real pebble, with a DNS provider in code that sets the TXT records
 * through pebble-challtestsrv's management API (pebble resolves names with challtestsrv's DNS): a
 * wildcard and its base name on one certificate, served by SNI for any name under it, and no HTTP
 * listener needed.
 */
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { tempDir } from './helpers/app.js'
import { requirePrograms } from './helpers/external.js'
import { startInstance } from './helpers/fleet.js'
import { request } from './helpers/http.js'
import { acmeOptions, presented, reloaded, startPebble } from './helpers/pebble.js'

t.test('DNS-01 against pebble', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble()
  t.teardown(() => pebble.close())
  const calls: Array<[string, string, string]> = []
  const dns = {
    async set (name: string, value: string) {
      calls.push(['set', name, value])
      await pebble.setTxt(name, value)
    },
    async remove (name: string, value: string) {
      calls.push(['remove', name, value])
      await pebble.clearTxt(name)
    }
  }

  t.test('a wildcard and its base name on one certificate', async (t) => {
    const options = acmeOptions(pebble, tempDir(undefined, t), ['wild.test+*.wild.test'], 0, { challenge: 'dns-01', dns })
    const s = await startInstance({ ...options, allowedHosts: ['wild.test', 'shop.wild.test'], httpsRedirect: false }, 0, (app) => { app.get('/', async () => 'hello') })
    t.teardown(() => s.close())
    t.equal(s.httpPort, null, 'no HTTP listener')
    const update = await s.logs.waitFor(reloaded, 30_000)
    t.equal(update.reason, 'ACME certificate issued')
    const { root, intermediate } = await pebble.issuers()
    for (const name of ['wild.test', 'shop.wild.test', 'api.wild.test']) {
      const [leaf] = await presented(s.port, name)
      t.ok(leaf?.checkIssued(new X509Certificate(intermediate)), `${name}: issued by pebble`)
      t.match(leaf?.subjectAltName, /DNS:\*\.wild\.test/)
      t.match(leaf?.subjectAltName, /DNS:wild\.test/)
    }
    const verified = await request(`https://127.0.0.1:${s.port}/`, { ca: root, servername: 'shop.wild.test', headers: { host: 'shop.wild.test' } })
    t.equal(verified.status, 200, 'a client trusting pebble\'s root connects to a name under the wildcard, with host name checks')
    const sets = calls.filter(([what]) => what === 'set')
    t.same(sets.map(([, name]) => name), ['_acme-challenge.wild.test', '_acme-challenge.wild.test'], 'one TXT record per authorization, both at _acme-challenge of the base name')
    t.ok(sets.every(([, , value]) => /^[A-Za-z0-9_-]{43}$/.test(value)), 'each the base64url SHA-256 digest of the key authorization')
    t.same(calls.filter(([what]) => what === 'remove').map(([, name, value]) => [name, value]), sets.map(([, name, value]) => [name, value]), 'and every record is removed again')
    t.same(s.app.tls.status().certificates.map((c) => c.names), [['wild.test', '*.wild.test']])
  })

  t.test('a provider that fails: the order fails with its message, nothing else is touched', async (t) => {
    const failing = {
      async set () { throw new Error('the DNS API refused the token') },
      async remove () {}
    }
    const options = acmeOptions(pebble, tempDir(undefined, t), ['broken.test'], 0, { challenge: 'dns-01', dns: failing })
    const s = await startInstance({ ...options, httpsRedirect: false })
    t.teardown(() => s.close())
    const failure = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed', 15_000)
    t.match(failure.error, /the DNS API refused the token/)
    t.equal(s.app.tls.status().selfSigned, true, 'the temporary certificate keeps serving')
  })
})
