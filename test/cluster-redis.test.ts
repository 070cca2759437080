/**
 * Server-side sessions in Redis across a fleet: two demo instances (SESSION_STORE=redis) behind
 * haproxy with a real Redis. Login and logout on one instance are honoured by the other, an
 * operator revokes a user everywhere, and a Redis outage costs 503 on session routes only.
 */
import t from 'tap'
import { redisSessionStore } from '../sessions/redis-store.ts'
import { requirePrograms } from './helpers/external.ts'
import { startCluster, type Cluster, type Instance } from './helpers/cluster.ts'
import { cookieHeader, request, type Response } from './helpers/http.ts'

const FORM = 'application/x-www-form-urlencoded'

/** A request sent straight to one instance, as haproxy would send it (trusted proxy on loopback). */
function direct (instance: Instance, path: string, options: { method?: string, body?: string, cookie?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { host: 'localhost', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' }
  if (options.body !== undefined) headers['content-type'] = FORM
  if (options.cookie !== undefined) headers.cookie = options.cookie
  return request(`${instance.url}${path}`, { method: options.method ?? 'GET', body: options.body, headers })
}

/**
 * Resolves with the instances' log lines matching `pattern` once there is one: the lines arrive
 * through the children's stdout pipes, after the responses that caused them. Rejects after 10 s.
 */
async function loggedEventually (instances: readonly Instance[], pattern: (line: string) => boolean): Promise<string[]> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const found = instances.flatMap((instance) => instance.logs()).filter(pattern)
    if (found.length > 0 || Date.now() > deadline) return found
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function userOn (instance: Instance, cookie: string): Promise<unknown> {
  const res = await direct(instance, '/api/me', { cookie })
  if (res.status !== 200) throw new Error(`GET /api/me on ${instance.name} gave ${res.status}: ${res.body}`)
  return (JSON.parse(res.body) as { user: unknown }).user
}

async function loginOn (instance: Instance, user: string): Promise<string> {
  const res = await direct(instance, '/login', { method: 'POST', body: `user=${user}` })
  if (res.status !== 303) throw new Error(`POST /login on ${instance.name} gave ${res.status}: ${res.body}`)
  return cookieHeader(res)
}

t.test('Redis sessions across two instances behind haproxy', async (t) => {
  if (requirePrograms(t, ['redis-server', 'redis-cli', 'haproxy']) === null) return
  const cluster: Cluster = await startCluster({ instances: 2, redis: true, env: { SESSION_STORE: 'redis' } })
  t.teardown(() => cluster.close())
  const [a1, a2] = cluster.instances as [Instance, Instance]
  const redis = cluster.redis
  if (redis === null) throw new Error('the cluster has no Redis')

  t.test('the cookie holds an opaque id; the data is in Redis with the session lifetime as TTL', async (t) => {
    const login = await request(`${cluster.url}/login`, { ca: cluster.ca, method: 'POST', body: 'user=alice', headers: { 'content-type': FORM } })
    t.equal(login.status, 303)
    const cookie = cookieHeader(login)
    t.match(cookie, /^__Host-session=/)
    t.notMatch(Buffer.from(decodeURIComponent(cookie.split('=').slice(1).join('=')), 'base64').toString('latin1'), /alice/, 'the user is not in the cookie')
    const keys = (await redis.cli('--scan', '--pattern', 'secure-https:s:*')).split('\n').filter(Boolean)
    t.equal(keys.length, 1, 'one session in Redis')
    const ttl = Number(await redis.cli('ttl', keys[0] as string))
    t.ok(ttl > 86000 && ttl <= 86400, `its TTL is SESSION_MAX_AGE (${ttl} s)`)
    const servedBy = new Set<string>()
    for (let i = 0; i < 4; i++) {
      const me = await request(`${cluster.url}/api/me`, { ca: cluster.ca, headers: { cookie } })
      t.same(JSON.parse(me.body), { user: 'alice' }, `request ${i + 1} (served by ${String(me.headers['x-served-by'])}) sees alice`)
      servedBy.add(String(me.headers['x-served-by']))
    }
    t.same([...servedBy].sort(), ['a1', 'a2'], 'both instances answered')
  })

  t.test('a login on one instance is honoured by the other, and so is a logout', async (t) => {
    const cookie = await loginOn(a1, 'bob')
    t.equal(await userOn(a2, cookie), 'bob', 'made on a1, read on a2')
    const logout = await direct(a2, '/logout', { method: 'POST', cookie })
    t.equal(logout.status, 303)
    t.match(String(logout.headers['set-cookie']), /Max-Age=0|Expires=Thu, 01 Jan 1970/, 'the browser is told to drop the cookie')
    t.equal(await userOn(a1, cookie), null, 'the same cookie, replayed on a1 after logging out on a2, opens nothing')
    t.equal(await userOn(a2, cookie), null)
  })

  t.test('an operator revokes every session of a user, on every instance at once', async (t) => {
    const first = await loginOn(a1, 'carol')
    const second = await loginOn(a2, 'carol')
    const other = await loginOn(a1, 'dave')
    // What an admin script (or an admin route with fastify.sessions.revokeUser) does.
    const operator = redisSessionStore({ url: redis.url })
    t.teardown(() => operator.close?.())
    await operator.ready()
    t.equal(await operator.revokeUser('carol'), 2, 'both of carol\'s sessions')
    for (const instance of [a1, a2]) {
      t.equal(await userOn(instance, first), null, `carol's first session is gone on ${instance.name}`)
      t.equal(await userOn(instance, second), null, `carol's second session is gone on ${instance.name}`)
      t.equal(await userOn(instance, other), 'dave', `dave is still logged in on ${instance.name}`)
    }
  })

  t.test('Redis down: 503 where the session is needed, 200 elsewhere; back to normal when it returns', async (t) => {
    const cookie = await loginOn(a1, 'erin')
    await redis.stop()
    t.teardown(() => redis.start())
    const me = await request(`${cluster.url}/api/me`, { ca: cluster.ca, headers: { cookie } })
    t.equal(me.status, 503, 'a route that reads the session: 503 through haproxy')
    for (const instance of [a1, a2]) {
      const direct503 = await direct(instance, '/api/me', { cookie })
      t.equal(direct503.status, 503, `${instance.name}: 503`)
      t.notOk(direct503.headers['set-cookie'], `${instance.name}: no cookie is written as a fallback`)
    }
    const login = await direct(a2, '/login', { method: 'POST', body: 'user=frank' })
    t.equal(login.status, 503, 'a login (which writes the session) gets 503')
    t.notOk(login.headers['set-cookie'], 'and no session is put in the cookie instead')
    const health = await request(`${cluster.url}/healthz`, { ca: cluster.ca })
    t.equal(health.status, 200, '/healthz through haproxy still answers')
    t.equal(health.body, 'ok')
    const healthWithCookie = await direct(a1, '/healthz', { cookie })
    t.equal(healthWithCookie.status, 200, '/healthz answers even when the request carries a session cookie')
    const logged = await loggedEventually([a1, a2], (line) => /session store/i.test(line) && /Redis at 127\.0\.0\.1:\d+/.test(line))
    t.ok(logged.length > 0, 'the instances log why (the Redis address and what to check)')

    await redis.start()
    // Each instance's client reconnects by itself, on its own backoff (up to 2 s), and logs it
    // when it is ready: wait for both before reading across them (one may be back before the
    // other).
    for (const instance of [a1, a2]) {
      const back = await loggedEventually([instance], (line) => /is back after \d+ ms/.test(line))
      t.ok(back.length > 0, `${instance.name} logs its recovery`)
    }
    const again = await direct(a1, '/login', { method: 'POST', body: 'user=grace' })
    t.equal(again.status, 303, 'logins work again once Redis is back')
    t.equal(await userOn(a2, cookieHeader(again)), 'grace', 'and the new session is shared again')
  })
})
