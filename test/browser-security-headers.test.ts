/**
 * The headers as a browser enforces them (headless Chromium): in nonce mode a same-origin script
 * and a script with the nonce run, an inline script without it does not; frame-ancestors keeps
 * the pages and the API answers out of another site's frames, unless a route allows one.
 */
import Fastify from 'fastify'
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { launchChromium, spkiHash } from './helpers/chromium.ts'

t.test('nonce mode in Chromium: same-origin and nonced scripts run, an inline script without the nonce is blocked', async (t) => {
  const s = await startApp({ securityHeaders: { enableCSPNonces: true } }, (app) => {
    app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(`<!doctype html>
<script src="/app.js"></script>
<script nonce="${reply.cspNonce.script}">window.withNonce = true</script>
<script>window.withoutNonce = true</script>
<p id="done">loaded</p>`))
    app.get('/app.js', async (_request, reply) => reply.type('text/javascript').send('window.sameOrigin = true'))
  })
  t.teardown(() => s.close())
  const browser = await launchChromium(t, { args: [`--ignore-certificate-errors-spki-list=${spkiHash(s.cert as string)}`] })
  if (browser === null) return
  const page = await browser.context.newPage()
  const violations: string[] = []
  page.on('console', (message) => { if (/Content Security Policy/.test(message.text())) violations.push(message.text()) })
  const response = await page.goto(`${s.url}/`)
  t.equal(response?.status(), 200)
  await page.waitForSelector('#done')
  const ran = await page.evaluate('({ sameOrigin: window.sameOrigin === true, withNonce: window.withNonce === true, withoutNonce: window.withoutNonce === true })')
  t.strictSame(ran, { sameOrigin: true, withNonce: true, withoutNonce: false }, '\'self\' stays next to the nonce; the unnonced inline script is blocked')
  t.ok(violations.some((text) => /inline script/.test(text)), 'Chromium reports the blocked inline script')
})

t.test('frame-ancestors in Chromium: another site cannot frame a page or an API answer, unless the route allows it', async (t) => {
  const framer = Fastify()
  let framerOrigin = ''
  const s = await startApp({}, (app) => {
    app.get('/page', async (_request, reply) => reply.type('text/html').send('<!doctype html><p id="inside">page'))
    app.get('/api', async () => ({ secret: 'data' }))
    app.get('/widget', { helmet: { frameguard: false, contentSecurityPolicy: { directives: { frameAncestors: [() => framerOrigin] } } } },
      async (_request, reply) => reply.type('text/html').send('<!doctype html><p id="inside">widget'))
  })
  t.teardown(() => s.close())
  framer.get('/:path', async (request, reply) => reply.type('text/html').send(
    `<!doctype html><iframe src="${s.url}/${(request.params as { path: string }).path}" onload="document.body.dataset.loaded = '1'"></iframe>`))
  await framer.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => framer.close())
  const address = framer.server.address()
  framerOrigin = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`

  const browser = await launchChromium(t, { args: [`--ignore-certificate-errors-spki-list=${spkiHash(s.cert as string)}`] })
  if (browser === null) return
  /** Whether the framed answer's text shows inside the other site's frame (a blocked frame shows Chromium's error page). */
  const framed = async (path: string, text: string): Promise<boolean> => {
    const page = await browser.context.newPage()
    await page.goto(`${framerOrigin}/${path}`)
    await page.waitForFunction("document.body.dataset.loaded === '1'")
    const child = page.frames().find((frame) => frame !== page.mainFrame())
    const shown = child === undefined ? '' : await child.evaluate('document.body ? document.body.innerText : ""').then(String, () => '')
    await page.close()
    return shown.includes(text)
  }
  t.notOk(await framed('page', 'page'), 'an HTML page is not shown in another site\'s frame')
  t.notOk(await framed('api', 'secret'), 'nor is an API answer')
  t.ok(await framed('widget', 'widget'), 'a route that names the framing site in frame-ancestors is shown')
})
