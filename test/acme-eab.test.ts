/**
 * External account binding (ACME_EAB_KID, ACME_EAB_HMAC_KEY) against a pebble that requires it, as
 * ZeroSSL and Google Trust Services do: with the binding the account is created and the certificate
 * issued; without it, the CA's problem document says why.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { loadConfig } from '../index.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { acmeOptions, reloaded, startPebble } from './helpers/pebble.ts'

t.test('the variables', async (t) => {
  const base = { TLS_MODE: 'acme', ACME_DOMAINS: 'a.test', ACME_EMAIL: 'a@a.test', ACME_AGREE_TOS: 'true' }
  const config = loadConfig({ ...base, ACME_EAB_KID: 'kid-1', ACME_EAB_HMAC_KEY: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W' })
  t.same(config.tls === false ? null : config.tls.acme.eab, { kid: 'kid-1', hmacKey: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W' })
  t.throws(() => loadConfig({ ...base, ACME_EAB_KID: 'kid-1' }), /ACME_EAB_HMAC_KEY: is required with ACME_EAB_KID/, 'a key id alone is refused')
  t.throws(() => loadConfig({ ...base, ACME_EAB_KID: 'kid-1', ACME_EAB_HMAC_KEY: 'not base64url!' }), /ACME_EAB_HMAC_KEY: must be the base64url HMAC key the CA gave you/)
})

t.test('against a pebble that requires external account binding', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const hmacKey = randomBytes(32).toString('base64url')
  const pebble = await startPebble({ eab: { 'kid-1': hmacKey } })
  t.teardown(() => pebble.close())

  t.test('with the binding: issued', async (t) => {
    const s = await startApp(acmeOptions(pebble, tempDir(undefined, t), ['eab.test'], pebble.httpPort, { eab: { kid: 'kid-1', hmacKey } }))
    t.teardown(() => s.close())
    const update = await s.logs.waitFor(reloaded, 30_000)
    t.equal(update.reason, 'ACME certificate issued')
    t.equal(s.app.tls.status().selfSigned, false)
  })

  t.test('without it: refused, with the CA\'s problem document', async (t) => {
    const s = await startApp(acmeOptions(pebble, tempDir(undefined, t), ['noeab.test'], 0))
    t.teardown(() => s.close())
    const failure = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed', 15_000)
    const problem = failure.problem as { type?: string } | null
    t.equal(problem?.type, 'urn:ietf:params:acme:error:externalAccountRequired')
  })

  t.test('with a wrong key: refused', async (t) => {
    const s = await startApp(acmeOptions(pebble, tempDir(undefined, t), ['wrongeab.test'], 0, { eab: { kid: 'kid-1', hmacKey: randomBytes(32).toString('base64url') } }))
    t.teardown(() => s.close())
    const failure = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed', 15_000)
    t.match(JSON.stringify(failure.problem), /unauthorized|malformed|externalAccount/i)
  })
})
