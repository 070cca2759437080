import type { FastifyInstance } from 'fastify'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import type { SecureSessionOptions } from '../index.ts'
import { startApp, type StartedApp } from './helpers/app.ts'
import { fakeClock } from './helpers/clock.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'

declare module '@fastify/secure-session' {
  interface SessionData {
    user: string
    note: string
  }
}

const key = (): string => randomBytes(32).toString('base64')

function routes (app: FastifyInstance): void {
  app.get('/none', async () => 'untouched')
  app.get('/read', async (request) => ({ user: request.session.get('user') ?? null, note: request.session.get('note') ?? null }))
  app.post<{ Querystring: { user?: string, note?: string } }>('/set', async (request) => {
    if (request.query.user !== undefined) request.session.set('user', request.query.user)
    if (request.query.note !== undefined) request.session.set('note', request.query.note)
    return { ok: true }
  })
  app.post<{ Querystring: { user: string } }>('/login', async (request) => {
    request.session.regenerate()
    request.session.set('user', request.query.user)
    return { ok: true }
  })
  app.post('/logout', async (request) => {
    request.session.delete()
    return { ok: true }
  })
  app.get('/typed', async (request) => {
    // Compile-time checks of the SessionData augmentation above (tsc --noEmit runs over tests).
    const user: string | undefined = request.session.get('user')
    const other: unknown = request.session.get('anything-else')
    // @ts-expect-error: user is declared a string
    if (user === 'never') request.session.set('user', 42)
    return { user: user ?? null, other: other ?? null }
  })
  app.post('/relogin', async (request) => {
    const before = request.session.data()
    request.session.delete()
    request.session.set('user', 'bob')
    return { before, after: request.session.data() }
  })
  app.post('/keep-note', async (request) => {
    const before = { changed: request.session.changed, deleted: request.session.deleted }
    request.session.regenerate(['note'])
    request.session.set('user', 'carol')
    const afterSet = { changed: request.session.changed, deleted: request.session.deleted }
    return { before, afterSet, data: request.session.data() }
  })
  app.post('/flags-on-delete', async (request) => {
    request.session.delete()
    return { changed: request.session.changed, deleted: request.session.deleted }
  })
  app.post('/touch', async (request) => {
    request.session.touch()
    return { ok: true }
  })
}

async function start (t: Test, secureSession: SecureSessionOptions = {}, options: Parameters<typeof startApp>[0] = {}): Promise<StartedApp> {
  const s = await startApp({ ...options, secureSession: { keys: [key()], ...secureSession } }, routes)
  t.teardown(() => s.close())
  return s
}

/** Sends a request with an optional cookie value for the session cookie. */
function send (s: StartedApp, method: string, path: string, cookie?: string, name = '__Host-session'): Promise<Response> {
  return request(`${s.url}${path}`, {
    method,
    ca: s.cert ?? undefined,
    headers: cookie === undefined ? {} : { cookie: `${name}=${cookie}` }
  })
}

function sessionCookie (response: Response, name = '__Host-session') {
  const line = (response.headers['set-cookie'] ?? []).find((l) => l.startsWith(`${name}=`))
  return line === undefined ? undefined : parseSetCookie(line)
}

t.test('the cookie: __Host-session, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, Max-Age of the session', async (t) => {
  const s = await start(t)
  const set = await send(s, 'POST', '/set?user=alice')
  t.equal(set.status, 200)
  const cookie = sessionCookie(set)
  t.ok(cookie, 'a write sets the cookie')
  if (cookie === undefined) return
  t.match(cookie.attributes, { 'max-age': '86400', path: '/', httponly: true, secure: true, samesite: 'Lax' })
  t.notOk('domain' in cookie.attributes, '__Host- forbids Domain')
  t.match(cookie.value, /^[A-Za-z0-9_%-]+$/, 'percent-encoded: no characters that need quoting')
  t.match(decodeURIComponent(cookie.value), /^[A-Za-z0-9_-]+;[A-Za-z0-9_-]{32}$/, '@fastify/secure-session\'s format: ciphertext;nonce, in base64url, which its base64 decoder reads')
  t.notMatch(Buffer.from(decodeURIComponent(cookie.value).split(';')[0] ?? '', 'base64').toString('latin1'), /alice/, 'the content is encrypted')

  const read = await send(s, 'GET', '/read', cookie.value)
  t.same(JSON.parse(read.body), { user: 'alice', note: null, }, 'the session comes back')
  t.same(JSON.parse((await send(s, 'GET', '/typed', cookie.value)).body), { user: 'alice', other: null })
  t.equal(read.headers['set-cookie'], undefined, 'reading sends no Set-Cookie')
})

t.test('every cookie is opened, as @fastify/secure-session does; an unchanged session sends no Set-Cookie; a bad cookie is expired wherever it comes', async (t) => {
  const s = await start(t)
  const bogus = 'AQ' + 'A'.repeat(80)
  const untouched = await send(s, 'GET', '/none', bogus)
  t.equal(untouched.status, 200)
  t.equal(s.logs.events('session.tampered').length, 1, 'the bad cookie is reported even on a route that does not use the session')
  t.equal(sessionCookie(untouched)?.attributes['max-age'], '0', 'and expired, so that the browser stops sending it')

  const anonymous = await send(s, 'GET', '/read')
  t.same(JSON.parse(anonymous.body), { user: null, note: null })
  t.equal(anonymous.headers['set-cookie'], undefined, 'reading an empty session does not create one')

  const cookie = sessionCookie(await send(s, 'POST', '/set?user=alice'))?.value
  const none = await send(s, 'GET', '/none', cookie)
  t.equal(none.headers['set-cookie'], undefined, 'a valid session that did not change: no Set-Cookie')
})

t.test('a Domain turns the prefix into __Secure- (a __Host- cookie with Domain is refused by browsers)', async (t) => {
  const s = await start(t, { domain: 'example.com' })
  const set = await send(s, 'POST', '/set?user=alice')
  t.equal(sessionCookie(set, '__Host-session'), undefined)
  const cookie = sessionCookie(set, '__Secure-session')
  t.ok(cookie, 'named __Secure-session')
  t.match(cookie?.attributes, { domain: 'example.com', secure: true, httponly: true, samesite: 'Lax' })
})

t.test('plain HTTP (TLS_MODE=off): the cookie still works, without Secure and without prefix, and the log says so', async (t) => {
  const s = await start(t, {}, { tls: false, httpsRedirect: false })
  t.match(s.url, /^http:/)
  const set = await send(s, 'POST', '/set?user=alice', undefined)
  const cookie = sessionCookie(set, 'session')
  t.ok(cookie, 'named session (a prefixed name needs Secure)')
  t.notOk(cookie !== undefined && 'secure' in cookie.attributes, 'not Secure, so the browser keeps it over http')
  t.match(cookie?.attributes, { httponly: true, samesite: 'Lax' })
  const read = await send(s, 'GET', '/read', cookie?.value, 'session')
  t.equal(JSON.parse(read.body).user, 'alice', 'the session works over plain HTTP')
  t.ok(s.logs.lines.some((line) => line.level === 40 && /without the Secure flag.*TLS_MODE=off/.test(line.msg ?? '')), 'a warning names the degradation')
})

t.test('a Secure cookie written over plain HTTP (a proxy not trusted) is warned about once', async (t) => {
  const s = await start(t, { secure: true }, { tls: false, httpsRedirect: false })
  await send(s, 'POST', '/set?user=alice')
  await send(s, 'POST', '/set?user=bob')
  const warnings = s.logs.lines.filter((line) => /is Secure but this request came over plain HTTP/.test(line.msg ?? ''))
  t.equal(warnings.length, 1, 'one warning for two such responses')
})

t.test('no SESSION_KEYS in development: the aggregate keeps a development key in TLS_DIR; without a TLS_DIR, an ephemeral key and a plain warning', async (t) => {
  const kept = await startApp({}, routes)
  t.teardown(() => kept.close())
  t.notOk(kept.logs.lines.some((line) => /SESSION_KEYS is not set/.test(line.msg ?? '')), 'a key kept under TLS_DIR: no warning')
  const s = await startApp({ tls: false, secureSession: { secure: false } }, routes)
  t.teardown(() => s.close())
  t.ok(s.logs.lines.some((line) => line.level === 40 && /SESSION_KEYS is not set.*NOT survive a restart/.test(line.msg ?? '')))
  const set = await send(kept, 'POST', '/set?user=alice')
  const read = await send(kept, 'GET', '/read', sessionCookie(set)?.value)
  t.equal(JSON.parse(read.body).user, 'alice', 'sessions work within the process')
})

t.test('rotation: an old-key cookie is accepted and re-issued with the newest key; a removed key gives no session', async (t) => {
  const oldKey = key()
  const newKey = key()
  const before = await start(t, { keys: [oldKey] })
  const after = await start(t, { keys: [newKey, oldKey] })
  const removed = await start(t, { keys: [newKey] })

  const oldCookie = sessionCookie(await send(before, 'POST', '/set?user=alice'))?.value as string
  t.ok(oldCookie)

  const read = await send(after, 'GET', '/read', oldCookie)
  t.equal(JSON.parse(read.body).user, 'alice', 'the old key still opens it')
  const reissued = sessionCookie(read)
  t.ok(reissued, 'a read-only request re-issues a cookie sealed with an old key')
  t.not(reissued?.value, oldCookie)
  const readAgain = await send(after, 'GET', '/read', oldCookie)
  t.equal(JSON.parse(readAgain.body).user, 'alice')
  t.ok(sessionCookie(readAgain), 'and re-issued again when the old cookie comes back (opened without decrypting, still marked for re-sealing)')

  const withNewOnly = await send(removed, 'GET', '/read', reissued?.value)
  t.equal(JSON.parse(withNewOnly.body).user, 'alice', 'the re-issued cookie is sealed with the newest key')

  const again = await send(after, 'GET', '/read', reissued?.value)
  t.equal(again.headers['set-cookie'], undefined, 'a newest-key cookie is not re-issued')

  const refused = await send(removed, 'GET', '/read', oldCookie)
  t.equal(refused.status, 200)
  t.same(JSON.parse(refused.body), { user: null, note: null, }, 'once the old key is removed its cookies are no session')
  t.equal(removed.logs.events('session.tampered')[0]?.reason, 'decrypt-failed')
})

t.test('max-age is enforced inside the payload (faked clock), and writes do not extend it', async (t) => {
  const clock = fakeClock(t)
  const s = await start(t, { maxAge: 3600 })
  const first = sessionCookie(await send(s, 'POST', '/set?user=alice'))
  t.equal(first?.attributes['max-age'], '3600')

  clock.advance(1800)
  const rewritten = await send(s, 'POST', '/set?note=hello', first?.value)
  const second = sessionCookie(rewritten)
  t.equal(second?.attributes['max-age'], '1800', 'a write half-way gives the remaining lifetime, not a fresh one')

  clock.advance(1799)
  const late = await send(s, 'GET', '/read', second?.value)
  t.same(JSON.parse(late.body), { user: 'alice', note: 'hello', }, 'valid one second before the end')

  clock.advance(1)
  const expired = await send(s, 'GET', '/read', second?.value)
  t.equal(expired.status, 200)
  t.same(JSON.parse(expired.body), { user: null, note: null, }, 'a fresh empty session at maxAge, whatever the cookie says')
  const event = s.logs.events('session.expired')[0]
  t.match(event, { reason: 'max-age', level: 40 })
  t.match(sessionCookie(expired)?.attributes, { 'max-age': '0' }, 'and the dead cookie is expired in the browser')

  clock.advance(3600)
  const replayed = await send(s, 'GET', '/read', second?.value)
  t.same(JSON.parse(replayed.body), { user: null, note: null })
  t.match(s.logs.events('session.tampered')[0], { reason: 'replayed-past-expiry' }, 'long after the cookie\'s own Max-Age it can only be a replay')
})

t.test('idle timeout: sliding, re-issued only once less than half the window remains', async (t) => {
  const clock = fakeClock(t)
  const s = await start(t, { maxAge: 3600, idleTimeout: 600 })
  const first = sessionCookie(await send(s, 'POST', '/set?user=alice'))
  t.equal(first?.attributes['max-age'], '600', 'the cookie lives as long as the idle window')

  clock.advance(200)
  const early = await send(s, 'GET', '/read', first?.value)
  t.equal(JSON.parse(early.body).user, 'alice')
  t.equal(early.headers['set-cookie'], undefined, 'no re-encryption while more than half the window remains')

  clock.advance(100)
  const half = await send(s, 'GET', '/read', first?.value)
  const renewed = sessionCookie(half)
  t.ok(renewed, 're-issued at half the window')
  t.equal(renewed?.attributes['max-age'], '600')

  clock.advance(301)
  const stale = await send(s, 'GET', '/read', first?.value)
  t.equal(JSON.parse(stale.body).user, null, 'the old cookie is past its idle time')
  t.match(s.logs.events('session.expired')[0], { reason: 'idle' })

  const fresh = await send(s, 'GET', '/read', renewed?.value)
  t.equal(JSON.parse(fresh.body).user, 'alice', 'the renewed one is not')

  clock.advance(298)
  t.equal(JSON.parse((await send(s, 'GET', '/read', renewed?.value)).body).user, 'alice', 'one second before its idle end')
  clock.advance(1)
  t.equal(JSON.parse((await send(s, 'GET', '/read', renewed?.value)).body).user, null, 'idle for the whole window: expired')
})

t.test('regenerate: new content and a new cookie, and a new lifetime', async (t) => {
  const clock = fakeClock(t)
  const s = await start(t, { maxAge: 3600 })
  const planted = sessionCookie(await send(s, 'POST', '/set?user=mallory&note=planted'))?.value
  clock.advance(3000)
  const login = await send(s, 'POST', '/login?user=alice', planted)
  const cookie = sessionCookie(login)
  t.ok(cookie)
  t.not(cookie?.value, planted, 'a different cookie')
  t.equal(cookie?.attributes['max-age'], '3600', 'the new session gets a full lifetime')
  const read = await send(s, 'GET', '/read', cookie?.value)
  t.same(JSON.parse(read.body), { user: 'alice', note: null, }, 'nothing from the planted session survives')
  clock.advance(3599)
  t.equal(JSON.parse((await send(s, 'GET', '/read', cookie?.value)).body).user, 'alice', 'counted from the login, not the planted session')
})

t.test('regenerate(keep) keeps only the named values; changed and deleted say what the response will do', async (t) => {
  const s = await start(t)
  const cookie = sessionCookie(await send(s, 'POST', '/set?user=mallory&note=kept'))?.value
  t.ok(cookie)
  const res = await send(s, 'POST', '/keep-note', cookie)
  const body = JSON.parse(res.body) as { before: { changed: boolean, deleted: boolean }, afterSet: { changed: boolean, deleted: boolean }, data: Record<string, unknown> }
  t.same(body.before, { changed: false, deleted: false }, 'an untouched session has changed and deleted false')
  t.same(body.afterSet, { changed: true, deleted: false }, 'after regenerate and set: changed')
  t.same(body.data, { note: 'kept', user: 'carol' }, 'user was dropped and set anew; note survived')
  const next = sessionCookie(res)?.value
  t.not(next, cookie, 'a new cookie')
  t.same(JSON.parse((await send(s, 'GET', '/read', next)).body), { user: 'carol', note: 'kept', })
  const deleted = JSON.parse((await send(s, 'POST', '/flags-on-delete', next)).body) as { changed: boolean, deleted: boolean }
  t.same(deleted, { changed: true, deleted: true }, 'after delete: changed and deleted')
})

t.test('delete: the cookie is expired with the attributes a __Host- cookie needs', async (t) => {
  const s = await start(t)
  const cookie = sessionCookie(await send(s, 'POST', '/set?user=alice'))?.value
  const logout = await send(s, 'POST', '/logout', cookie)
  const cleared = sessionCookie(logout)
  t.ok(cleared)
  t.equal(cleared?.value, '')
  t.match(cleared?.attributes, { 'max-age': '0', path: '/', secure: true, httponly: true, samesite: 'Lax' })
  t.match(String(cleared?.attributes.expires), /1970/)

  const nothing = await send(s, 'POST', '/logout')
  t.equal(nothing.headers['set-cookie'], undefined, 'no cookie to expire when none came')
})

t.test('touch re-issues without a change; a session too large for a cookie is refused with an error log, not sent', async (t) => {
  const s = await start(t)
  const cookie = sessionCookie(await send(s, 'POST', '/set?user=alice'))?.value
  const touched = sessionCookie(await send(s, 'POST', '/touch', cookie))
  t.ok(touched)
  t.not(touched?.value, cookie, 'a new nonce each time')

  const big = await send(s, 'POST', `/set?note=${'x'.repeat(5000)}`, cookie)
  t.equal(big.status, 200)
  t.equal(sessionCookie(big), undefined, 'not sent: browsers would drop it silently')
  t.ok(s.logs.lines.some((line) => line.level === 50 && /too large for a cookie/.test(line.msg ?? '')))
})

t.test('a second session plugin is refused at register time', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { secureSession } = await import('../index.ts')
  const app = Fastify()
  t.teardown(() => app.close())
  app.decorateRequest('session', null as never)
  app.register(secureSession, { keys: [key()] })
  await t.rejects(async () => { await app.ready() }, /request\.session already exists/)
})

t.test('set() after delete(): the response still ends the session, as with @fastify/secure-session; regenerate() starts a new one', async (t) => {
  const s = await start(t)
  const cookie = sessionCookie(await send(s, 'POST', '/set?user=alice&note=old'))?.value
  const response = await send(s, 'POST', '/relogin', cookie)
  t.same(JSON.parse(response.body), { before: { user: 'alice', note: 'old' }, after: { user: 'bob', note: 'old' } })
  t.equal(sessionCookie(response)?.attributes['max-age'], '0', 'deleted stays true: the cookie is expired')
  const next = sessionCookie(await send(s, 'POST', '/login?user=bob', cookie))
  t.not(next?.attributes['max-age'], '0')
  t.same(JSON.parse((await send(s, 'GET', '/read', next?.value)).body), { user: 'bob', note: null })
})

t.test('behind a TLS proxy that the app does not see as HTTPS, the Secure cookie is still sent and the log says why browsers drop it', async (t) => {
  const s = await start(t, {}, { tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] }, httpsRedirect: false, hsts: false })
  t.match(s.url, /^http:/)
  const viaProxy = await request(`${s.url}/set?user=alice`, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } })
  t.match(sessionCookie(viaProxy)?.attributes, { secure: true })
  t.notOk(s.logs.lines.some((line) => /came over plain HTTP/.test(line.msg ?? '')), 'no warning when the proxy says https')

  const plain = await request(`${s.url}/set?user=alice`, { method: 'POST' })
  t.match(sessionCookie(plain)?.attributes, { secure: true }, 'never silently dropped')
  t.ok(s.logs.lines.some((line) => line.level === 40 && /Secure but this request came over plain HTTP.*TRUST_PROXY/.test(line.msg ?? '')), 'a warning names the cause')
})
