/**
 * HSTS findings: `localhost.` (the fully qualified form) got a year-long policy, and answers the
 * redirect listener hands to the app (exempt paths, ACME challenges) got HSTS over plain HTTP when a
 * trusted peer sent `X-Forwarded-Proto: https`.
 */
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { request } from './helpers/http.ts'

const STS = 'strict-transport-security'

t.test('localhost. is localhost: no HSTS', async (t) => {
  const s = await startApp({ allowedHosts: ['app.test'] }, (app) => { app.get('/', async () => 'hi') })
  t.teardown(() => s.close())
  const ca = s.cert as string
  for (const host of ['localhost.', `localhost.:${s.port}`, 'LOCALHOST.']) {
    const res = await request(`https://127.0.0.1:${s.port}/`, { ca, servername: 'localhost', headers: { host } })
    t.equal(res.status, 200, `${host} is served`)
    t.notOk(res.headers[STS], `and gets no HSTS (${host})`)
  }
  const named = await request(`https://127.0.0.1:${s.port}/`, { ca, servername: 'localhost', headers: { host: 'app.test.' } })
  t.equal(named.headers[STS], 'max-age=31536000', 'a real name with the dot still gets it')
})

t.test('the redirect listener never sends HSTS, even for a trusted peer claiming https', async (t) => {
  const s = await startApp({ allowedHosts: ['app.test'], proxyTrust: { trust: ['127.0.0.1'], forwarded: true } }, (app) => {
    app.get('/healthz', async () => 'ok')
    app.get('/.well-known/acme-challenge/:token', async () => 'token')
  })
  t.teardown(() => s.close())
  for (const path of ['/healthz', '/.well-known/acme-challenge/abc']) {
    for (const claim of [{ 'x-forwarded-proto': 'https' }, { forwarded: 'for=192.0.2.1;proto=https' }] as Array<Record<string, string>>) {
      const res = await request(`${s.redirectUrl as string}${path}`, { headers: { host: 'app.test', ...claim } })
      t.equal(res.status, 200, `${path} answers over HTTP`)
      t.notOk(res.headers[STS], `without HSTS (${Object.keys(claim)[0] ?? ''})`)
    }
  }
})
