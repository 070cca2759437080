import t from 'tap'
import { request } from './helpers/http.ts'
import { startApp } from './helpers/app.ts'

t.test('the redirect listener sends HTTP to HTTPS on the same host, keeping path and query', async (t) => {
  const s = await startApp({}, (app) => { app.get('/any/path', async () => ({ ok: true })) })
  t.teardown(() => s.close())
  t.ok(s.redirectUrl, 'the redirect listener is up')
  const redirectUrl = s.redirectUrl as string

  // Development: temporary redirects that the browser does not keep (redirect-dev.test.ts has more).
  const get = await request(`${redirectUrl}/any/path?q=1`)
  t.equal(get.status, 307, 'GET gets 307 in development')
  t.equal(get.headers['cache-control'], 'no-store')
  t.equal(get.headers.location, `https://localhost:${s.port}/any/path?q=1`)

  const head = await request(`${redirectUrl}/x`, { method: 'HEAD' })
  t.equal(head.status, 307, 'HEAD gets 307')

  const post = await request(`${redirectUrl}/login`, { method: 'POST', body: 'user=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(post.status, 307, 'POST gets 307, which keeps the method and body')
  t.equal(post.headers.location, `https://localhost:${s.port}/login`)

  const ip = await request(`${redirectUrl.replace('localhost', '127.0.0.1')}/a`)
  t.equal(ip.status, 307)
  t.equal(ip.headers.location, `https://127.0.0.1:${s.port}/a`, 'an allowed IP host keeps its name')

  const evil = await request(`${redirectUrl}/a`, { headers: { host: 'evil.example' } })
  t.equal(evil.status, 400, 'a Host outside ALLOWED_HOSTS gets 400, not an open redirect')
  t.notOk(evil.headers.location)
  const event = s.logs.events('redirect.unknown-host')[0]
  t.equal(event?.host, 'evil.example', 'and a redirect.unknown-host event')

  const followed = await request(get.headers.location as string, { ca: s.cert as string })
  t.equal(followed.status, 200, 'the redirect target answers over TLS')
  t.equal(followed.tls?.protocol, 'TLSv1.3')
})
