/**
 * Store-mode sessions against a real redis-server: what anonymous traffic costs the store, cookies
 * of the other mode, and what a client sees when the store fails (stopped, hanging, refusing
 * writes), on every path, including an error reply whose session write fails.
 */
import type { FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { redisSessionStore } from '../index.ts'
import { startApp, type StartedApp } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'
import { startRedis, type RedisServer } from './helpers/redis.ts'

const NAME = '__Host-session'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const key = (): string => randomBytes(32).toString('base64')

function routes (app: FastifyInstance): void {
  app.get('/form', async (_request, reply) => ({ token: reply.generateCsrf() }))
  app.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
  app.get('/healthz', async () => 'ok')
  app.post('/action', async () => ({ done: true }))
  app.post<{ Querystring: { user?: string } }>('/login', async (request) => {
    request.session.regenerate()
    request.session.set('user', request.query.user ?? 'alice')
    return { ok: true }
  })
  app.post('/login-then-fail', { config: { csrf: false } }, async (request) => {
    request.session.set('user', 'alice')
    throw Object.assign(new Error('the form is incomplete'), { statusCode: 400 })
  })
}

function cookieOf (response: Response): string | undefined {
  const line = (response.headers['set-cookie'] ?? []).find((l) => l.startsWith(`${NAME}=`))
  return line === undefined ? undefined : parseSetCookie(line).value
}

function client (s: StartedApp) {
  return (method: string, path: string, options: { cookie?: string | undefined, body?: string, headers?: Record<string, string> } = {}): Promise<Response> =>
    request(`${s.url}${path}`, {
      method,
      ca: s.cert ?? undefined,
      body: options.body,
      headers: { ...(options.headers ?? {}), ...(options.cookie === undefined ? {} : { cookie: `${NAME}=${options.cookie}` }) }
    })
}

async function keysIn (redis: RedisServer): Promise<number> {
  return Number(await redis.cli('dbsize'))
}

/** Internal text a store failure must never put in a client's answer. */
function assertNoLeak (t: Test, response: Response, redis: RedisServer, label: string): void {
  for (const secret of ['Redis', 'redis', '127.0.0.1', `:${redis.port}`, 'ECONNREFUSED', 'NOREPLICAS', 'timed out', 'Connection is closed', 'writeable', 'REDIS_URL', 'during']) {
    t.notOk(response.body.includes(secret), `${label}: the answer does not carry "${secret}"`)
  }
}

t.test('anonymous traffic costs Redis nothing: a CSRF secret stays in the visitor\'s sealed cookie', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const s = await startApp({ secureSession: { keys: [key()], store: 'redis', redisUrl: redis.url, csrf: true } }, async (app) => {
    await app.register((await import('@fastify/formbody')).default)
    routes(app)
  })
  t.teardown(() => s.close())
  const send = client(s)

  const visits = await Promise.all(Array.from({ length: 300 }, () => send('GET', '/form')))
  t.ok(visits.every((response) => response.status === 200 && cookieOf(response) !== undefined), 'each visitor got a form token and a cookie for its secret')
  t.equal(await keysIn(redis), 0, '300 anonymous visitors with CSRF tokens: no key in Redis')

  const first = visits[0] as Response
  const { token } = JSON.parse(first.body) as { token: string }
  const cookie = cookieOf(first)
  const posted = await send('POST', '/action', { cookie, body: `_csrf=${encodeURIComponent(token)}`, headers: FORM })
  t.equal(posted.status, 200, 'the token is checked against the secret in the cookie')
  t.equal((await send('POST', '/action', { cookie, body: '_csrf=forged', headers: FORM })).status, 403, 'a wrong token is still refused')
  t.equal(await keysIn(redis), 0, 'still nothing stored')

  const login = await send('POST', '/login?user=alice', { cookie, headers: { 'x-csrf-token': token } })
  t.equal(login.status, 200)
  const session = cookieOf(login)
  t.same(JSON.parse((await send('GET', '/me', { cookie: session })).body), { user: 'alice' })
  t.equal(Number(await redis.cli('eval', "return #redis.call('keys', 'secure-https:s:*')", '0')), 1, 'a login stores one session')
})

t.test('a cookie of the other mode is no session: cookie sessions cannot outlive a switch to Redis, nor the reverse', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const shared = key()
  const cookieApp = await startApp({ secureSession: { keys: [shared] } }, routes)
  t.teardown(() => cookieApp.close())
  const storeApp = await startApp({ secureSession: { keys: [shared], store: 'redis', redisUrl: redis.url } }, routes)
  t.teardown(() => storeApp.close())

  const cookieSession = cookieOf(await client(cookieApp)('POST', '/login?user=mallory'))
  t.same(JSON.parse((await client(cookieApp)('GET', '/me', { cookie: cookieSession })).body), { user: 'mallory' }, 'a cookie session (data in the cookie)')
  const presented = await client(storeApp)('GET', '/me', { cookie: cookieSession })
  t.same(JSON.parse(presented.body), { user: null }, 'in store mode a cookie carrying data instead of an id is no session')
  t.equal(parseSetCookie((presented.headers['set-cookie'] ?? [])[0] ?? '').attributes['max-age'], '0', 'and it is expired in the browser')
  t.match(storeApp.logs.events('session.expired').at(-1), { reason: 'store-mismatch', store: true })

  const storeSession = cookieOf(await client(storeApp)('POST', '/login?user=alice'))
  t.same(JSON.parse((await client(storeApp)('GET', '/me', { cookie: storeSession })).body), { user: 'alice' })
  const back = await client(cookieApp)('GET', '/me', { cookie: storeSession })
  t.same(JSON.parse(back.body), { user: null }, 'in cookie mode a store cookie (an id) is no session')
  t.match(cookieApp.logs.events('session.expired').at(-1), { reason: 'store-mismatch', store: false })
  t.same(JSON.parse((await client(storeApp)('GET', '/me', { cookie: storeSession })).body), { user: 'alice' }, 'the store session itself is untouched')
})

t.test('a store failure answers 503 with a generic message and the request id, the details only in the log', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const s = await startApp({ secureSession: { keys: [key()], store: 'redis', redisUrl: redis.url } }, routes)
  t.teardown(() => s.close())
  const send = client(s)
  const loggedIn = cookieOf(await send('POST', '/login?user=alice'))

  t.test('NOREPLICAS: Redis refuses writes', async (t) => {
    await redis.cli('config', 'set', 'min-replicas-to-write', '1')
    t.teardown(() => redis.cli('config', 'set', 'min-replicas-to-write', '0'))
    const response = await send('POST', '/login?user=bob')
    t.equal(response.status, 503)
    const body = JSON.parse(response.body) as { message: string, code: string }
    t.equal(body.code, 'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE')
    t.match(body.message, /^the session store is unavailable; try again shortly \(request id [\w-]+\)$/)
    assertNoLeak(t, response, redis, 'NOREPLICAS')
    t.notOk(cookieOf(response), 'no cookie')
    t.ok(s.logs.lines.some((line) => /NOREPLICAS/.test(JSON.stringify(line))), 'the log has the reason')
  })

  t.test('an error reply whose session write fails: still no internal text, never a crash', async (t) => {
    await redis.cli('config', 'set', 'min-replicas-to-write', '1')
    t.teardown(() => redis.cli('config', 'set', 'min-replicas-to-write', '0'))
    const response = await send('POST', '/login-then-fail')
    t.equal(response.status, 503, `the store failure replaces the 400 (${response.status} ${response.body})`)
    assertNoLeak(t, response, redis, 'error reply')
    t.notOk(response.body.includes('the form is incomplete') && response.status >= 500, 'no mix of the two')
    t.equal((await send('GET', '/healthz')).status, 200, 'the server goes on')
  })

  t.test('Redis stopped: reads and writes answer 503 without internal text', async (t) => {
    await redis.stop()
    t.teardown(() => redis.start())
    for (const [label, method, path, cookie] of [['read', 'GET', '/me', loggedIn], ['login', 'POST', '/login?user=carol', undefined], ['error reply', 'POST', '/login-then-fail', undefined]] as const) {
      const response = await send(method, path, { cookie })
      t.equal(response.status, 503, `${label}: 503`)
      assertNoLeak(t, response, redis, `${label}, Redis stopped`)
      t.match(JSON.parse(response.body).message, /request id/, `${label}: the request id to quote`)
    }
    t.equal((await send('GET', '/healthz', { cookie: loggedIn })).status, 200, 'a route that does not use the session: 200')
  })
})

t.test('a Redis that hangs past commandTimeout: 503 without internal text', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const store = redisSessionStore({ url: redis.url, commandTimeout: 300 })
  await store.ready()
  const s = await startApp({ secureSession: { keys: [key()], store } }, routes)
  t.teardown(() => s.close())
  const send = client(s)
  const loggedIn = cookieOf(await send('POST', '/login?user=alice'))
  await redis.cli('client', 'pause', '1500', 'ALL')
  const [read, write] = await Promise.all([send('GET', '/me', { cookie: loggedIn }), send('POST', '/login?user=bob')])
  for (const [label, response] of [['read', read], ['write', write]] as const) {
    t.equal(response.status, 503, `${label}: 503`)
    assertNoLeak(t, response, redis, `${label}, Redis hanging`)
  }
  t.ok(s.logs.lines.some((line) => /timed out/i.test(JSON.stringify(line))), 'the log says it timed out')
})

t.test('fastify.sessions.revokeUser from a route: a store failure is a generic 503 there too', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const s = await startApp({ secureSession: { keys: [key()], store: 'redis', redisUrl: redis.url } }, (app) => {
    app.post('/revoke', async () => ({ revoked: await app.sessions.revokeUser('alice') }))
  })
  t.teardown(() => s.close())
  await redis.stop()
  const response = await client(s)('POST', '/revoke')
  t.equal(response.status, 503)
  assertNoLeak(t, response, redis, 'revokeUser')
})

t.test('a request in flight at logout or revocation cannot bring the session back; a renewal does not rewrite the data', async (t) => {
  if (requirePrograms(t, ['redis-server']) === null) return
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const store = redisSessionStore({ url: redis.url })
  t.teardown(() => store.close())
  await store.ready()

  // The store itself: a loaded id is written only while it exists; touch() extends without rewriting.
  await store.set('a', { user: 'alice', role: 'admin' }, 60)
  await store.set('a', { user: 'alice', role: 'user' }, 60, { existing: true })
  t.same(await store.get('a'), { user: 'alice', role: 'user' }, 'an existing entry is written')
  await store.touch('a', 120)
  t.same(await store.get('a'), { user: 'alice', role: 'user' }, 'touch() leaves the data as it is')
  t.ok(Number(await redis.cli('TTL', 'secure-https:s:a')) > 60, 'and extends its time')
  await redis.cli('DEL', 'secure-https:s:a')
  await store.set('a', { user: 'alice', role: 'admin' }, 60, { existing: true })
  t.same(await store.get('a'), null, 'a loaded id that is gone (ended, expired, evicted with its tombstone) is not written back')
  await store.touch('a', 60)
  t.same(await store.get('a'), null, 'nor touched back')

  // Through the plugin: the request holds the session from before the logout.
  const s = await startApp({ secureSession: { keys: [key()], store } }, (app) => {
    routes(app)
    app.post('/logout', { config: { csrf: false } }, async (request) => { request.session.delete(); return { ok: true } })
    app.post('/slow', { config: { csrf: false } }, async (request) => {
      started()
      await proceed
      request.session.set('user', 'alice, late')
      return { ok: true }
    })
  })
  t.teardown(() => s.close())
  const send = client(s)
  let started: () => void = () => {}
  let release: () => void = () => {}
  const reached = new Promise<void>((resolve) => { started = resolve })
  const proceed = new Promise<void>((resolve) => { release = resolve })
  const cookie = cookieOf(await send('POST', '/login?user=alice'))
  const slow = send('POST', '/slow', { cookie })
  await reached
  await send('POST', '/logout', { cookie })
  t.same(JSON.parse((await send('GET', '/me', { cookie })).body), { user: null }, 'logged out')
  // The tombstone guards for 10 minutes; the existence check holds after it too.
  await redis.cli('EVAL', "for _, k in ipairs(redis.call('KEYS', 'secure-https:r:*')) do redis.call('DEL', k) end return 1", '0')
  release()
  t.equal((await slow).status, 200, 'the request in flight ends normally')
  t.same(JSON.parse((await send('GET', '/me', { cookie })).body), { user: null }, 'and the copy of the cookie stays logged out')
})
