/**
 * Chromium stores the HSTS policy it receives over HTTPS and then upgrades an http:// navigation by
 * itself. Chromium never stores HSTS for localhost, so the test maps app.test to 127.0.0.1, and makes
 * Chromium accept the test certificate by its public key (with ignoreHTTPSErrors alone Chromium
 * does not store HSTS).
 */
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { launchChromium, spkiHash } from './helpers/chromium.ts'

t.test('Chromium stores HSTS and upgrades a later http:// navigation itself', async (t) => {
  let plainHttpRequests = 0
  const s = await startApp({ allowedHosts: ['app.test'], hsts: { maxAge: 600 } }, (app) => {
    app.addHook('onRequest', async (request) => { if (request.protocol === 'http') plainHttpRequests++ })
    app.get('/', async (request, reply) => reply.type('text/html').send(`<p id="proto">${request.protocol}</p>`))
  })
  t.teardown(() => s.close())

  const args = [
    '--host-resolver-rules=MAP app.test 127.0.0.1',
    `--ignore-certificate-errors-spki-list=${spkiHash(s.cert as string)}`,
    '--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable'
  ]

  // Control: a browser that never saw the policy sends plain HTTP to the TLS port, which fails.
  const fresh = await launchChromium(t, { args })
  if (fresh === null) return
  const control = await fresh.context.newPage()
  const failed = await control.goto(`http://app.test:${s.port}/`).then(() => false, () => true)
  t.ok(failed, 'without HSTS, http:// to the TLS port does not load')
  await fresh.close()

  const browser = await launchChromium(t, { args })
  if (browser === null) return
  const page = await browser.context.newPage()
  const first = await page.goto(`https://app.test:${s.port}/`)
  t.equal(first?.status(), 200)
  t.equal(await first?.headerValue('strict-transport-security'), 'max-age=600', 'the policy arrives over HTTPS')

  const upgraded = await page.goto(`http://app.test:${s.port}/`)
  t.equal(upgraded?.status(), 200, 'the http:// navigation loads')
  t.equal(new URL(page.url()).protocol, 'https:', 'Chromium upgraded it to https:// itself')
  t.equal(await page.textContent('#proto'), 'https', 'and the server saw HTTPS')
  t.equal(plainHttpRequests, 0, 'no plain HTTP request reached the app')
})
