/**
 * The session store metrics against a real Redis: each call timed in the histogram, and the calls
 * that fail while Redis is stopped counted as errors: what "the session store is down" alerts on.
 */
import t from 'tap'
import { metricNames, type RedisSessionStore } from '../index.ts'
import { startApp } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { cookieHeader, request } from './helpers/http.ts'
import { scrape } from './helpers/metrics.ts'
import { startRedis } from './helpers/redis.ts'

// A fixed random key (production refuses patterned ones).
const KEY = Buffer.from('7292d1d0038a93c932bf16e79ca89ec60455fdd72fecb1d72b35afee20bd3c82', 'hex').toString('base64')

t.test('session store calls are timed, and counted as errors while Redis is down', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const s = await startApp({ secureSession: { keys: [KEY], store: 'redis', redisUrl: redis.url }, metrics: { port: 0 } }, (app) => {
    app.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
    app.post('/login', async (request) => {
      request.session.regenerate()
      request.session.set('user', 'alice')
      return { ok: true }
    })
  })
  t.teardown(() => s.close())
  const port = (await s.app.secureHttpsMetrics.listening())?.port as number
  const send = (method: string, path: string, cookie?: string) => request(`${s.url}${path}`, { method, ca: s.cert as string, headers: cookie === undefined ? {} : { cookie } })

  const cookie = cookieHeader(await send('POST', '/login'))
  t.same(JSON.parse((await send('GET', '/me', cookie)).body), { user: 'alice' })
  const up = await scrape(port)
  t.equal(up.value(`${metricNames.sessionStoreSeconds}_count`, { operation: 'set' }), 1, 'the login wrote the session once')
  t.equal(up.value(`${metricNames.sessionStoreSeconds}_count`, { operation: 'get' }), 1, 'the read loaded it once')
  const setSeconds = up.value(`${metricNames.sessionStoreSeconds}_sum`, { operation: 'set' }) as number
  t.ok(setSeconds > 0 && setSeconds < 2, `a real round trip to Redis: ${(setSeconds * 1000).toFixed(2)} ms`)
  t.equal(up.value(`${metricNames.sessionStoreSeconds}_bucket`, { operation: 'get', le: '+Inf' }), 1)
  t.equal(up.value(metricNames.sessionStoreErrors, { operation: 'get' }), undefined, 'no error while Redis is up')

  await redis.stop()
  t.equal((await send('GET', '/me', cookie)).status, 503)
  t.equal((await send('GET', '/me', cookie)).status, 503)
  t.equal((await send('POST', '/login')).status, 503)
  t.equal((await send('GET', '/me')).status, 200, 'a request without a session cookie calls no store')
  const down = await scrape(port)
  t.equal(down.value(metricNames.sessionStoreErrors, { operation: 'get' }), 2, 'each failed read')
  const failedWrites = down.value(metricNames.sessionStoreErrors, { operation: 'set' }) as number
  t.ok(failedWrites >= 1, `and the failed write (${failedWrites} attempts)`)
  t.equal(down.value(`${metricNames.sessionStoreSeconds}_count`, { operation: 'get' }), 3, 'failed calls are timed too')

  await redis.start()
  await (s.app.sessions.store as RedisSessionStore).ready()
  const again = cookieHeader(await send('POST', '/login'))
  t.ok(again, 'sessions work again')
  const back = await scrape(port)
  t.equal(back.value(metricNames.sessionStoreErrors, { operation: 'set' }), failedWrites, 'no new error once Redis is back')
  t.equal(back.value(`${metricNames.sessionStoreSeconds}_count`, { operation: 'set' }), 2 + failedWrites, 'the new write is timed')
})
