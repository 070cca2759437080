/**
 * The two request checks in real Chromium, with the demo in its default configuration: a page on
 * another site (its own origin, on another loopback listener) auto-submits the demo's login form
 * (login CSRF: SameSite=Lax does not stop it, the answer's Set-Cookie logs the browser in as the
 * attacker) and its logout form; the app's own form still works; a host not allowed is refused.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import t, { type Test } from 'tap'
import { freePort } from './helpers/app.ts'
import { launchChromium, spkiHash } from './helpers/chromium.ts'
import { startDemo } from './helpers/demo.ts'

/** The attacker's site: a page that posts a form to the demo as soon as it loads. */
async function startAttacker (t: Test, target: string): Promise<string> {
  const port = await freePort()
  const server: Server = createServer((req, res) => {
    const [path] = (req.url ?? '/').split('?')
    const action = path === '/logout' ? `${target}/logout` : `${target}/login`
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(`<!doctype html><title>win a prize</title>
<form id="f" method="post" action="${action}"><input name="user" value="mallory"></form>
<script>document.getElementById('f').submit()</script>`)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://evil.test:${port}`
}

t.test('Chromium: a cross-site form cannot log the browser in or out; the app\'s own form works; an unknown host is refused', async (t) => {
  const demo = await startDemo(t, { ALLOWED_HOSTS: 'app.test', SESSION_KEYS: randomBytes(32).toString('base64') })
  const app = `https://app.test:${demo.port}`
  const evil = await startAttacker(t, app)
  const browser = await launchChromium(t, {
    args: [
      '--host-resolver-rules=MAP app.test 127.0.0.1, MAP evil.test 127.0.0.1, MAP other.test 127.0.0.1',
      `--ignore-certificate-errors-spki-list=${spkiHash(demo.cert)}`,
      '--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable'
    ]
  })
  if (browser === null) return
  const page = await browser.context.newPage()
  const me = async (): Promise<unknown> => {
    const response = await page.goto(`${app}/api/me`)
    return JSON.parse(await response?.text() ?? 'null')
  }

  // Login CSRF: the attacker's page posts the login form with the attacker's name.
  const refused = page.waitForResponse((response) => response.url() === `${app}/login`)
  await page.goto(`${evil}/`)
  t.equal((await refused).status(), 403, 'the cross-site login POST is refused')
  t.same(await me(), { user: null }, 'the browser is not logged in as the attacker')
  t.same((await browser.context.cookies(app)).filter((c) => c.name === '__Host-session' && c.value !== ''), [], 'no session cookie was set')

  // The app's own form still works.
  await page.goto(`${app}/`)
  await page.fill('#login-user', 'alice')
  await Promise.all([page.waitForURL(`${app}/dashboard`), page.click('#login')])
  t.equal(await page.textContent('#user'), 'alice', 'the app\'s own login form logs in')
  t.same(await me(), { user: 'alice' })

  // Cross-site logout.
  const logout = page.waitForResponse((response) => response.url() === `${app}/logout`)
  await page.goto(`${evil}/logout`)
  t.equal((await logout).status(), 403, 'the cross-site logout POST is refused')
  t.same(await me(), { user: 'alice' }, 'the browser is still logged in')

  // The app's own logout form works.
  await page.goto(`${app}/`)
  await Promise.all([page.waitForURL(`${app}/`), page.click('#logout')])
  t.same(await me(), { user: null }, 'the app\'s own logout form logs out')

  // A host the app does not serve (DNS rebinding, a forged name): refused.
  const other = await page.goto(`https://other.test:${demo.port}/`)
  t.equal(other?.status(), 400, 'a host not in ALLOWED_HOSTS gets 400')
  t.equal(await other?.text(), 'Unknown host\n')
  t.match(demo.output(), /"securityEvent":"csrf.rejected"/, 'the refusals were logged as security events')
  t.match(demo.output(), /"securityEvent":"host.unknown"/)
})
