/**
 * Stateless (encrypted cookie) sessions across a fleet: two demo instances behind haproxy, TLS
 * at haproxy. A session made on one instance is read by the other, and a key rotation rolled out
 * one instance at a time loses no session when it is done in the documented phases.
 */
import t from 'tap'
import { requirePrograms } from './helpers/external.ts'
import { startCluster, sessionKey, type Cluster, type Instance } from './helpers/cluster.ts'
import { cookieHeader, request, type Response } from './helpers/http.ts'

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/** A request sent straight to one instance, as haproxy would send it (trusted proxy on loopback). */
function direct (instance: Instance, path: string, options: { method?: string, body?: string, cookie?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { host: 'localhost', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' }
  if (options.body !== undefined) headers['content-type'] = FORM['content-type']
  if (options.cookie !== undefined) headers.cookie = options.cookie
  return request(`${instance.url}${path}`, { method: options.method ?? 'GET', body: options.body, headers })
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

t.test('cookie sessions across two instances behind haproxy', async (t) => {
  if (requirePrograms(t, ['haproxy']) === null) return
  const k1 = sessionKey()
  const cluster: Cluster = await startCluster({ instances: 2, env: { SESSION_KEYS: k1 } })
  t.teardown(() => cluster.close())
  const [a1, a2] = cluster.instances as [Instance, Instance]

  t.test('a login through haproxy is honoured by both instances, in turn', async (t) => {
    const login = await request(`${cluster.url}/login`, { ca: cluster.ca, method: 'POST', body: 'user=alice', headers: FORM })
    t.equal(login.status, 303)
    const cookie = cookieHeader(login)
    t.match(cookie, /^__Host-session=/, 'the session cookie is set through the proxy')
    const servedBy = new Set<string>()
    for (let i = 0; i < 4; i++) {
      const me = await request(`${cluster.url}/api/me`, { ca: cluster.ca, headers: { cookie } })
      t.equal(me.status, 200)
      t.same(JSON.parse(me.body), { user: 'alice' }, `request ${i + 1} (served by ${String(me.headers['x-served-by'])}) sees alice`)
      servedBy.add(String(me.headers['x-served-by']))
    }
    t.same([...servedBy].sort(), ['a1', 'a2'], 'round robin sent the requests to both instances')
  })

  t.test('a login on one instance is read on the other', async (t) => {
    t.equal(await userOn(a2, await loginOn(a1, 'bob')), 'bob', 'made on a1, read on a2')
    t.equal(await userOn(a1, await loginOn(a2, 'carol')), 'carol', 'made on a2, read on a1')
  })

  t.test('a rotation rolled out in phases (add as second key, then promote) loses no session', async (t) => {
    const k2 = sessionKey()
    const old = await loginOn(a1, 'dave')
    const cookies: Array<[string, string]> = [['dave', old]]
    const everyoneEverywhere = async (step: string): Promise<void> => {
      for (const [user, cookie] of cookies) {
        for (const instance of [a1, a2]) t.equal(await userOn(instance, cookie), user, `${step}: ${user}'s session on ${instance.name}`)
      }
    }
    // Phase 1: every instance learns the new key, still writing with the old one.
    await cluster.restart(0, { SESSION_KEYS: `${k1},${k2}` })
    await everyoneEverywhere('k2 added on a1')
    cookies.push(['erin', await loginOn(a1, 'erin')])
    await cluster.restart(1, { SESSION_KEYS: `${k1},${k2}` })
    await everyoneEverywhere('k2 added on a2')
    // Phase 2: the new key goes first, one instance at a time; the other can already read it.
    await cluster.restart(0, { SESSION_KEYS: `${k2},${k1}` })
    cookies.push(['frank', await loginOn(a1, 'frank')])
    await everyoneEverywhere('k2 first on a1')
    await cluster.restart(1, { SESSION_KEYS: `${k2},${k1}` })
    cookies.push(['grace', await loginOn(a2, 'grace')])
    await everyoneEverywhere('k2 first on a2')
    const through = await request(`${cluster.url}/api/me`, { ca: cluster.ca, headers: { cookie: old } })
    t.same(JSON.parse(through.body), { user: 'dave' }, 'the session from before the rotation still works through haproxy')
  })

  t.test('why the phases: a new key put first on one instance only is unreadable on the other', async (t) => {
    const k3 = sessionKey()
    const current = a2.env.SESSION_KEYS as string
    await cluster.restart(0, { SESSION_KEYS: `${k3},${current}` })
    const cookie = await loginOn(a1, 'heidi')
    t.equal(await userOn(a1, cookie), 'heidi')
    t.equal(await userOn(a2, cookie), null, 'a2 does not know k3: the user looks logged out there')
  })
})
