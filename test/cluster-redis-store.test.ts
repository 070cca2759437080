/**
 * The Redis session store against a real redis-server: expiry, destroy, per-user revocation that
 * in-flight writes cannot undo, fast failures while Redis is down, and recovery when it is back.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { redisSessionStore, SessionStoreUnavailableError, type StoreLogger } from '../sessions/redis-store.ts'
import { requirePrograms } from './helpers/external.ts'
import { startRedis } from './helpers/redis.ts'

function recordingLog (): StoreLogger & { lines: Array<{ level: string, message: string }> } {
  const lines: Array<{ level: string, message: string }> = []
  return {
    lines,
    error: (_fields, message) => { lines.push({ level: 'error', message }) },
    warn: (_fields, message) => { lines.push({ level: 'warn', message }) },
    info: (_fields, message) => { lines.push({ level: 'info', message }) }
  }
}

const id = (n: number): string => `id${n}`.padEnd(43, 'x')

t.test('redisSessionStore', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const log = recordingLog()
  const store = redisSessionStore({ url: redis.url, log, commandTimeout: 1000 })
  t.teardown(() => store.close?.())
  await store.ready()

  t.test('stores data with the session lifetime as TTL, and destroys it', async (t) => {
    await store.set(id(1), { user: 'alice', n: 1 }, 300)
    t.same(await store.get(id(1)), { user: 'alice', n: 1 })
    const ttl = Number(await redis.cli('ttl', `secure-https:s:${id(1)}`))
    t.ok(ttl > 295 && ttl <= 300, `TTL is the session lifetime (${ttl})`)
    t.equal(await store.get(id(2)), null, 'an unknown id is no session')
    await store.destroy(id(1))
    t.equal(await store.get(id(1)), null, 'destroyed')
    await store.set(id(1), { user: 'alice', n: 2 }, 300)
    t.equal(await store.get(id(1)), null, 'a late write of a destroyed session (a request in flight) does not bring it back')
    const tombstone = Number(await redis.cli('ttl', `secure-https:r:${id(1)}`))
    t.ok(tombstone > 290 && tombstone <= 300, `the refusal lasts what the session had left when under 10 minutes (${tombstone} s)`)
    await store.set(id(4), { user: 'alice' }, 86400)
    await store.destroy(id(4))
    t.equal(Number(await redis.cli('ttl', `secure-https:r:${id(4)}`)), 600, 'and 10 minutes at most, so ended sessions do not pile up')
    await store.destroy(id(99))
    t.pass('destroying an unknown id is not an error')
  })

  t.test('an entry expires with its TTL', async (t) => {
    await store.set(id(3), { user: 'bob' }, 1)
    t.same(await store.get(id(3)), { user: 'bob' })
    await new Promise((resolve) => setTimeout(resolve, 2100))
    t.equal(await store.get(id(3)), null, 'gone after its lifetime')
  })

  t.test('revokeUser ends every session of one user and no other', async (t) => {
    await store.set(id(10), { user: 'carol' }, 300)
    await store.set(id(11), { user: 'carol', theme: 'dark' }, 300)
    await store.set(id(12), { user: 'dave' }, 300)
    await store.set(id(13), { anonymous: true }, 300)
    t.equal(await store.revokeUser('carol'), 2, 'two sessions revoked')
    t.equal(await store.get(id(10)), null)
    t.equal(await store.get(id(11)), null)
    t.same(await store.get(id(12)), { user: 'dave' }, 'another user keeps theirs')
    t.same(await store.get(id(13)), { anonymous: true }, 'a session without a user is untouched')
    await store.set(id(11), { user: 'carol', theme: 'light' }, 300)
    t.equal(await store.get(id(11)), null, 'a request of a revoked session still in flight cannot write it back')
    t.equal(await store.revokeUser('carol'), 0, 'nothing left to revoke')
    t.equal(await store.revokeUser('nobody'), 0)
  })

  t.test('a session whose user changes moves to the new user', async (t) => {
    await store.set(id(20), { user: 'erin' }, 300)
    await store.set(id(20), { user: 'frank' }, 300)
    t.equal(await store.revokeUser('erin'), 0, 'no longer erin\'s')
    t.equal(await redis.cli('zscore', 'secure-https:u:erin', id(20)), '', 'not in erin\'s index')
    t.equal(await store.revokeUser('frank'), 1, 'now frank\'s')
  })

  t.test('a user\'s index drops ended sessions, so it does not grow without bound', async (t) => {
    for (let i = 0; i < 20; i++) {
      await store.set(id(1000 + i), { user: 'grace' }, 300)
      await store.destroy(id(1000 + i))
    }
    t.equal(await redis.cli('zcard', 'secure-https:u:grace'), '0', 'destroy removes its id')
    for (let i = 0; i < 20; i++) await store.set(id(2000 + i), { user: 'grace' }, 1)
    await new Promise((resolve) => setTimeout(resolve, 2100))
    await store.set(id(3000), { user: 'grace' }, 300)
    t.equal(await redis.cli('zcard', 'secure-https:u:grace'), '1', 'expired ids are dropped on the next write for that user')
    t.equal(await store.revokeUser('grace'), 1)
  })

  t.test('one user with thousands of sessions costs no more per write', async (t) => {
    // Redis counts every command, those run by scripts included: the work per write must not grow.
    const commands = async (): Promise<number> => {
      const stats = await redis.cli('info', 'commandstats')
      return [...stats.matchAll(/^cmdstat_(?!info)[^:]+:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
    }
    const perWrite = async (n: number): Promise<number> => {
      const before = await commands()
      for (let i = 0; i < 100; i++) await store.set(id(n + i), { user: 'heavy' }, 300)
      return (await commands() - before) / 100
    }
    const few = await perWrite(10_000)
    const pipeline = store.client.pipeline()
    for (let i = 0; i < 5000; i++) pipeline.zadd('secure-https:u:heavy', Math.floor(Date.now() / 1000) + 300, `filler${i}`)
    await pipeline.exec()
    const many = await perWrite(20_000)
    // (A stray command of the test's own, such as the pipeline's, can add 0.01.)
    t.ok(Math.abs(many - few) < 0.5, `Redis commands per write: ${few} with 100 sessions, ${many} with 5100`)
    t.equal(await store.revokeUser('heavy'), 200, 'fillers are not sessions and are not counted')
  })

  t.test('a Redis that hangs costs commandTimeout, then a 503 error', async (t) => {
    await store.set(id(50), { user: 'mia' }, 300)
    // Redis stays paused for 3 s, well past the 1 s commandTimeout, so that a busy machine's late
    // timers cannot make the call look as if it had waited for Redis (CLIENT UNPAUSE would itself
    // wait for the pause to end).
    await redis.cli('client', 'pause', '3000', 'ALL')
    const started = Date.now()
    await t.rejects(store.get(id(50)), { code: 'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE', message: /failed during get \(Command timed out\).*REDIS_URL/ })
    const waited = Date.now() - started
    t.ok(waited >= 900 && waited < 2700, `gave up after the 1000 ms commandTimeout, not when Redis answered (${waited} ms)`)
    let answer: unknown
    for (const deadline = Date.now() + 10_000; answer === undefined && Date.now() < deadline;) {
      answer = await store.ready().then(() => store.get(id(50)), () => undefined).catch(() => undefined)
    }
    t.same(answer, { user: 'mia' }, 'and works again when Redis answers')
  })

  t.test('while Redis is down every call fails at once with a 503 error, then recovers by itself', async (t) => {
    await store.set(id(30), { user: 'heidi' }, 300)
    await redis.stop()
    const started = Date.now()
    const error = await store.get(id(30)).then(() => null, (e: unknown) => e)
    t.type(error, SessionStoreUnavailableError)
    t.equal((error as InstanceType<typeof SessionStoreUnavailableError>).statusCode, 503)
    t.match((error as Error).message, /Redis at 127\.0\.0\.1:\d+ .*503.*REDIS_URL/)
    t.ok(Date.now() - started < 1500, 'it fails fast instead of queueing')
    await t.rejects(store.set(id(31), { user: 'heidi' }, 300), { code: 'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE' })
    await t.rejects(store.destroy(id(30)), { code: 'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE' })
    await t.rejects(store.revokeUser('heidi'), { code: 'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE' })
    // The calls fail as soon as the client is not ready; the outage line follows the client's own
    // close event, which may come a moment later: wait for it, then check that it came only once.
    const errors = (): Array<{ level: string, message?: string }> => log.lines.filter((line) => line.level === 'error')
    for (const deadline = Date.now() + 30_000; errors().length === 0 && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 20))
    await t.rejects(store.get(id(30)), { code: 'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE' })
    const outage = errors()
    t.equal(outage.length, 1, 'the outage is logged once, not once per retry')
    t.match(outage[0]?.message, /unreachable.*503 until it is back/)

    await redis.start()
    await store.ready()
    t.equal(await store.get(id(30)), null, 'a restarted Redis without persistence has lost its sessions (they are fresh sessions, not errors)')
    await store.set(id(32), { user: 'heidi' }, 300)
    t.same(await store.get(id(32)), { user: 'heidi' }, 'writes work again')
    t.match(log.lines.at(-1), { level: 'warn', message: /is back after \d+ ms/ })
  })

  t.test('a client of one\'s own is left open by close()', async (t) => {
    const client = new Redis(redis.url)
    const own = redisSessionStore({ client, prefix: 'other:' })
    await own.ready()
    await own.set(id(40), { user: 'ivan' }, 60)
    t.equal(await client.exists(`other:s:${id(40)}`), 1, 'keys use the given prefix')
    await own.close?.()
    t.equal(client.status, 'ready', 'the caller still owns its client')
    await client.quit()
  })

  t.test('options are checked', async (t) => {
    t.throws(() => redisSessionStore({}), /needs a url \(REDIS_URL/)
  })
})

t.test('ready() rejects with a clear message when Redis is not there', async (t) => {
  const { freePort } = await import('./helpers/app.ts')
  const port = await freePort()
  const store = redisSessionStore({ url: `redis://127.0.0.1:${port}`, commandTimeout: 300 })
  t.teardown(() => store.close?.())
  await t.rejects(store.ready(), { code: 'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE', message: /did not answer within 300 ms .*REDIS_URL/ })
  await t.rejects(store.get(id(1)), { code: 'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE' })
})

t.test('secureSession with store: \'redis\' in one process: same routes, revocation, outage', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const { startApp } = await import('./helpers/app.ts')
  const { cookieHeader, request } = await import('./helpers/http.ts')
  const { resolveConfig } = await import('../schemas/config.ts')
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const s = await startApp({ secureSession: { keys: [Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString('base64')], store: 'redis', redisUrl: redis.url } }, (app) => {
    app.get('/healthz', async () => 'ok')
    app.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
    app.post<{ Querystring: { user: string } }>('/login', async (request) => {
      request.session.regenerate()
      request.session.set('user', request.query.user)
      return { ok: true }
    })
    app.post<{ Querystring: { user: string } }>('/revoke', async (request) => ({ revoked: await app.sessions.revokeUser(request.query.user) }))
  })
  t.teardown(() => s.close())
  const get = (path: string, cookie?: string, method = 'GET') => request(`${s.url}${path}`, { method, ca: s.cert as string, headers: cookie === undefined ? {} : { cookie } })

  t.not(s.app.sessions.store, null, 'fastify.sessions.store is the Redis store')
  const login = await get('/login?user=judy', undefined, 'POST')
  const cookie = cookieHeader(login)
  t.same(JSON.parse((await get('/me', cookie)).body), { user: 'judy' })
  t.same(JSON.parse((await get('/revoke?user=judy', undefined, 'POST')).body), { revoked: 1 }, 'fastify.sessions.revokeUser from an admin route')
  t.same(JSON.parse((await get('/me', cookie)).body), { user: null }, 'the revoked session is gone')

  const again = cookieHeader(await get('/login?user=judy', undefined, 'POST'))
  await redis.stop()
  const down = await get('/me', again)
  t.equal(down.status, 503, 'a route that reads the session: 503')
  t.notOk(down.headers['set-cookie'], 'no cookie written')
  const loginDown = await get('/login?user=kim', undefined, 'POST')
  t.equal(loginDown.status, 503, 'a route that writes the session: 503')
  t.notOk(loginDown.headers['set-cookie'], 'and no session falls back into the cookie')
  t.equal((await get('/healthz', again)).status, 200, 'a route that does not touch the session: 200, even with a session cookie')
  t.ok(s.logs.lines.some((line) => /session store unavailable: Redis at 127\.0\.0\.1:\d+/.test(JSON.stringify(line))), 'the 503 is logged with the reason')
  await redis.start()
  await (s.app.sessions.store as ReturnType<typeof redisSessionStore>).ready()
  t.equal((await get('/login?user=kim', undefined, 'POST')).status, 200, 'sessions work again once Redis is back')

  t.throws(() => resolveConfig({ secureSession: { store: 'redis' } }), /REDIS_URL.*required with SESSION_STORE=redis|redisUrl.*required with SESSION_STORE=redis/)
  t.throws(() => resolveConfig({ secureSession: { store: 'memcached' as 'redis', redisUrl: redis.url } }), /store must be 'cookie', 'redis'/)
  t.throws(() => resolveConfig({ secureSession: { store: 'redis', redisUrl: 'http://x' } }), /redis:\/\/ or rediss:\/\/ URL/)
})

t.test('an app whose Redis is down at start still starts, and picks Redis up when it comes', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const { startApp } = await import('./helpers/app.ts')
  const { request } = await import('./helpers/http.ts')
  const redis = await startRedis('redis-server', { start: false })
  t.teardown(() => redis.close())
  const s = await startApp({ secureSession: { keys: [Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString('base64')], store: 'redis', redisUrl: redis.url } }, (app) => {
    app.get('/healthz', async () => 'ok')
    app.post('/login', async (request) => {
      request.session.set('user', 'liam')
      return { ok: true }
    })
  })
  t.teardown(() => s.close())
  const post = () => request(`${s.url}/login`, { method: 'POST', ca: s.cert as string })
  t.equal((await request(`${s.url}/healthz`, { ca: s.cert as string })).status, 200, 'serves what needs no session')
  t.equal((await post()).status, 503, 'and 503 for what does')
  t.ok(s.logs.lines.some((line) => /is unreachable .*reconnecting/.test(String(line.msg))), 'the outage at start is logged')
  await redis.start()
  await (s.app.sessions.store as ReturnType<typeof redisSessionStore>).ready()
  t.equal((await post()).status, 200, 'sessions work once Redis is up')
})

t.test('fastify.sessions.revokeUser with cookie sessions says why it cannot', async (t) => {
  const { sessionsControl } = await import('../sessions/redis-store.ts')
  const { memorySessionStore } = await import('../sessions/store.ts')
  const log = recordingLog()
  t.equal(sessionsControl(undefined, log).store, null)
  await t.rejects(sessionsControl(undefined, log).revokeUser('a'), /cookie sessions cannot be revoked.*SESSION_STORE=redis/)
  await t.rejects(sessionsControl(memorySessionStore(), log).revokeUser('a'), /needs a store with revokeUser/)
})
