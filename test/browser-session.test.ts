/**
 * The demo in a real browser: Debian's Chromium (headless, playwright-core) logs in through the
 * HTML form over HTTPS, and the browser itself reports the session cookie's flags.
 */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { launchChromium, spkiHash } from './helpers/chromium.ts'
import { startDemo } from './helpers/demo.ts'

t.test('Chromium logs in through the demo\'s form over HTTPS; the cookie is Secure, HttpOnly, SameSite=Lax; reload keeps it; logout ends it', async (t) => {
  const demo = await startDemo(t, { SESSION_KEYS: randomBytes(32).toString('base64'), SESSION_CSRF: 'true' })
  const browser = await launchChromium(t, { args: [`--ignore-certificate-errors-spki-list=${spkiHash(demo.cert)}`] })
  if (browser === null) return
  const page = await browser.context.newPage()

  const home = await page.goto(`${demo.url}/`)
  t.equal(home?.status(), 200)
  t.equal(await page.textContent('#status'), 'Not logged in.')
  const token = await page.getAttribute('form[action="/login"] input[name="_csrf"]', 'value')
  t.ok(token, 'with SESSION_CSRF=true the login form carries a CSRF token')

  await page.fill('#login-user', 'alice')
  await Promise.all([page.waitForURL(`${demo.url}/dashboard`), page.click('#login')])
  t.equal(await page.textContent('#user'), 'alice', 'logged in through the HTML form')

  const cookies = await browser.context.cookies(demo.url)
  const session = cookies.find((c) => c.name === '__Host-session')
  t.ok(session, 'the browser stored __Host-session (it refuses the prefix unless Secure, Path=/ and no Domain)')
  t.match(session, { secure: true, httpOnly: true, sameSite: 'Lax', path: '/', domain: 'localhost' })
  const lifetime = (session?.expires ?? 0) - Date.now() / 1000
  t.ok(lifetime > 86_000 && lifetime <= 86_400, `expires with SESSION_MAX_AGE (in ${Math.round(lifetime)} s)`)
  t.notMatch(await page.evaluate<string>('document.cookie'), /__Host-session/, 'HttpOnly: page scripts cannot read it')

  await page.reload()
  t.equal(await page.textContent('#user'), 'alice', 'the session survives a reload')
  const me = await page.goto(`${demo.url}/api/me`)
  t.same(await me?.json(), { user: 'alice' })

  await page.goto(`${demo.url}/dashboard`)
  await Promise.all([page.waitForURL(`${demo.url}/`), page.click('#logout')])
  t.equal(await page.textContent('#status'), 'Not logged in.', 'logged out')
  const after = (await browser.context.cookies(demo.url)).find((c) => c.name === '__Host-session')
  t.not(after?.value, session?.value, 'the logged-in cookie is gone from the browser')
  const meAfter = await page.goto(`${demo.url}/api/me`)
  t.same(await meAfter?.json(), { user: null }, 'and the app no longer knows the user')
  await page.goto(`${demo.url}/dashboard`)
  t.equal(new URL(page.url()).pathname, '/', 'the dashboard sends the logged-out browser home')

  // A form posted without the token (as another site's page would) is refused.
  const forged = await page.evaluate(async () => (await fetch('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'user=mallory' })).status)
  t.equal(forged, 403, 'a login POST without the CSRF token is refused')
})

t.test('without CSRF: logout removes the cookie from the browser altogether', async (t) => {
  const demo = await startDemo(t, { SESSION_KEYS: randomBytes(32).toString('base64') })
  const browser = await launchChromium(t, { args: [`--ignore-certificate-errors-spki-list=${spkiHash(demo.cert)}`] })
  if (browser === null) return
  const page = await browser.context.newPage()
  await page.goto(`${demo.url}/`)
  t.equal((await browser.context.cookies(demo.url)).length, 0, 'an anonymous page view sets no cookie')
  await page.fill('#login-user', 'bob')
  await Promise.all([page.waitForURL(`${demo.url}/dashboard`), page.click('#login')])
  t.equal(await page.textContent('#user'), 'bob')
  t.equal((await browser.context.cookies(demo.url)).filter((c) => c.name === '__Host-session').length, 1)
  await page.reload()
  t.equal(await page.textContent('#user'), 'bob', 'survives a reload')
  await Promise.all([page.waitForURL(`${demo.url}/`), page.click('#logout')])
  t.same((await browser.context.cookies(demo.url)).map((c) => c.name), [], 'no cookie left after logout')
  t.equal(await page.textContent('#status'), 'Not logged in.')
})
