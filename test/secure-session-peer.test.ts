/**
 * An app written for @fastify/secure-session runs unchanged on secureSession: the same cookies in
 * both directions (switching over and rolling back log no one out), the same route code (property
 * access, options({ maxAge }), reply.signCookie, @fastify/csrf-protection in its
 * '@fastify/secure-session' mode, a plugin that depends on '@fastify/secure-session'), the same
 * decorators; and a request without a socket, as serverless adapters make.
 */
import fastifyCsrfProtection from '@fastify/csrf-protection'
import fastifySecureSession from '@fastify/secure-session'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { IncomingMessage, ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { secureSession } from '../index.ts'
import { startApp, type StartedApp } from './helpers/app.ts'
import { parseSetCookie, request, type Response } from './helpers/http.ts'
import { growthAsync } from './helpers/linear.ts'

const NAME = '__Host-session'

function routes (app: FastifyInstance): void {
  app.get('/me', async (request) => ({ user: request.session.get('user') ?? null, data: request.session.data() ?? null }))
  app.post('/login', async (request) => {
    request.session.set('user', 'alice')
    return { ok: true }
  })
}

function cookieOf (response: Response | { headers: Record<string, unknown> }): string | undefined {
  const header = response.headers['set-cookie']
  const lines = Array.isArray(header) ? header as string[] : typeof header === 'string' ? [header] : []
  const line = lines.find((l) => l.startsWith(`${NAME}=`))
  return line === undefined ? undefined : parseSetCookie(line).value
}

/** An app on @fastify/secure-session itself, as before the switch (or after a rollback). */
async function plainApp (key: Buffer): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifySecureSession, { key, cookieName: NAME, cookie: { path: '/', httpOnly: true, secure: true, sameSite: 'lax' } })
  routes(app)
  await app.ready()
  return app
}

async function suite (t: { teardown (fn: () => unknown): void }, keys: string[], more: (app: FastifyInstance) => void | Promise<void> = () => {}): Promise<StartedApp> {
  const s = await startApp({ secureSession: { keys } }, async (app) => {
    routes(app)
    await more(app)
  })
  t.teardown(() => s.close())
  return s
}

const get = (s: StartedApp, path: string, cookie?: string, method = 'GET', headers: Record<string, string> = {}): Promise<Response> =>
  request(`${s.url}${path}`, { method, ca: s.cert ?? undefined, headers: { ...headers, ...(cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` }) } })

t.test('switching over and rolling back: each reads the other\'s cookies with the same key', async (t) => {
  const key = randomBytes(32)
  const plain = await plainApp(key)
  t.teardown(() => plain.close())
  const s = await suite(t, [key.toString('base64')])

  const before = cookieOf(await plain.inject({ method: 'POST', url: '/login' }))
  t.ok(before, 'a cookie written by @fastify/secure-session')
  const switched = await get(s, '/me', before)
  t.same(JSON.parse(switched.body), { user: 'alice', data: { user: 'alice' } }, 'the suite reads it: no one is logged out by the switch')
  const upgraded = cookieOf(switched)
  t.ok(upgraded, 'the first response re-issues it with the creation time the absolute lifetime needs')
  t.same(JSON.parse((await get(s, '/me', upgraded)).body).user, 'alice')
  t.equal((await get(s, '/me', upgraded)).headers['set-cookie'], undefined, 'once, not on every request')

  const written = cookieOf(await get(s, '/login', undefined, 'POST'))
  const rolledBack = await plain.inject({ url: '/me', cookies: { [NAME]: decodeURIComponent(written as string) } })
  t.equal(JSON.parse(rolledBack.body).user, 'alice', 'a plain @fastify/secure-session app reads the suite\'s cookie: a rollback logs no one out')
  t.ok('__created' in JSON.parse(rolledBack.body).data, 'it sees the suite\'s __created as one more value, documented in docs/compat.md')
})

t.test('switching over from @fastify/secure-session with cookie: { signed: true }: its signed cookies are read, then written unsigned', async (t) => {
  const key = randomBytes(32)
  const signed = Fastify()
  await signed.register(fastifySecureSession, { key, cookieName: NAME, cookie: { path: '/', httpOnly: true, secure: true, sameSite: 'lax', signed: true } })
  routes(signed)
  await signed.ready()
  t.teardown(() => signed.close())
  const s = await suite(t, [key.toString('base64')])

  const before = cookieOf(await signed.inject({ method: 'POST', url: '/login' })) as string
  t.match(decodeURIComponent(before), /^[^;]+;[^.]+\.[^.]+$/, 'the old app\'s cookie: the sealed value, a dot and @fastify/cookie\'s signature')
  const switched = await get(s, '/me', before)
  t.same(JSON.parse(switched.body), { user: 'alice', data: { user: 'alice' } }, 'the suite reads it: no one is logged out by the switch')
  t.equal(s.logs.events('session.tampered').length, 0, 'and it is no tampering')
  const upgraded = cookieOf(switched) as string
  t.notOk(decodeURIComponent(upgraded).includes('.'), 'the first response re-issues it unsigned, in the suite\'s own form')
  t.same(JSON.parse((await get(s, '/me', upgraded)).body).user, 'alice')

  const [value = '', signature = ''] = decodeURIComponent(before).split('.')
  const forged = encodeURIComponent(`${value}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`)
  t.same(JSON.parse((await get(s, '/me', forged)).body).user, null, 'a signature that is not valid opens nothing')
  t.equal(s.logs.events('session.tampered').at(-1)?.reason, 'bad-nonce', 'and is reported as tampering, as @fastify/secure-session refuses it (the signature read as part of the nonce)')
})

t.test('route code for @fastify/secure-session: property access, options({ maxAge }), changed and deleted', async (t) => {
  const s = await suite(t, [randomBytes(32).toString('base64')], (app) => {
    app.post('/prop', async (request) => {
      const session = request.session as unknown as Record<string, unknown>
      session.note = 'by property'
      return { read: session.note, viaGet: request.session.get('note' as never) ?? null }
    })
    app.get('/prop', async (request) => ({ note: (request.session as unknown as Record<string, unknown>).note ?? null }))
    app.post('/short', async (request) => {
      request.session.set('user', 'bob')
      request.session.options({ maxAge: 42 })
      return { ok: true }
    })
    app.post('/flags', async (request) => {
      const before = { changed: request.session.changed, deleted: request.session.deleted }
      request.session.delete()
      return { before, after: { changed: request.session.changed, deleted: request.session.deleted } }
    })
  })
  const written = await get(s, '/prop', undefined, 'POST')
  t.same(JSON.parse(written.body), { read: 'by property', viaGet: 'by property' }, 'assignments are kept and read back')
  t.same(JSON.parse((await get(s, '/prop', cookieOf(written))).body), { note: 'by property' }, 'and saved in the cookie')

  const short = await get(s, '/short', undefined, 'POST')
  const line = (short.headers['set-cookie'] ?? []).map(parseSetCookie).find((c) => c.name === NAME)
  t.equal(line?.attributes['max-age'], '42', 'options({ maxAge }) sets this response\'s Max-Age')
  t.match(line?.attributes, { path: '/', secure: true, httponly: true, samesite: 'Lax' }, 'the other attributes stay')
  t.same(JSON.parse((await get(s, '/me', line?.value)).body).user, 'bob')

  const flags = JSON.parse((await get(s, '/flags', cookieOf(written), 'POST')).body)
  t.same(flags, { before: { changed: false, deleted: false }, after: { changed: true, deleted: true } })
})

t.test('reply.signCookie, decorators and a plugin with dependencies: [\'@fastify/secure-session\']', async (t) => {
  const key = randomBytes(32)
  const s = await suite(t, [key.toString('base64')], async (app) => {
    await app.register(fp(async (child) => {
      child.get('/dependent', async () => ({ registered: true, hasPlugin: child.hasPlugin('@fastify/secure-session') }))
    }, { name: 'needs-secure-session', dependencies: ['@fastify/secure-session'] }))
    app.get('/signed', async (_request, reply) => {
      reply.setCookie('prefs', reply.signCookie('dark'), { path: '/', secure: true })
      return { signed: reply.signCookie('dark') }
    })
    app.get('/unsign', async (request) => request.unsignCookie(request.cookies.prefs ?? ''))
  })
  t.same(JSON.parse((await get(s, '/dependent')).body), { registered: true, hasPlugin: true }, 'a plugin depending on @fastify/secure-session registers')
  const signed = await get(s, '/signed')
  const { signed: value } = JSON.parse(signed.body) as { signed: string }
  t.match(value, /^dark\./, 'reply.signCookie works: @fastify/cookie got the secret @fastify/secure-session derives from the key')
  const unsigned = await request(`${s.url}/unsign`, { ca: s.cert ?? undefined, headers: { cookie: `prefs=${encodeURIComponent(value)}` } })
  t.same(JSON.parse(unsigned.body), { valid: true, renew: false, value: 'dark' })

  // The same secret as a plain app with the same key: signed cookies survive the switch too.
  const plain = await plainApp(key)
  t.teardown(() => plain.close())
  t.equal(plain.signCookie('dark'), value, 'the same signature as @fastify/secure-session\'s own registration')

  const made = s.app.createSecureSession({ user: 'carol' })
  const sealed = s.app.encodeSecureSession(made)
  t.equal(s.app.decodeSecureSession(sealed)?.get('user'), 'carol', 'createSecureSession, encodeSecureSession and decodeSecureSession, with the suite\'s key')
  t.equal(JSON.parse((await get(s, '/me', encodeURIComponent(sealed))).body).user, 'carol', 'a cookie made with the decorators opens a session (websocket-style integrations)')
})

t.test('@fastify/csrf-protection registered by the app in its \'@fastify/secure-session\' mode', async (t) => {
  const s = await suite(t, [randomBytes(32).toString('base64')], async (app) => {
    await app.register(fastifyCsrfProtection, { sessionPlugin: '@fastify/secure-session' })
    app.get('/form', async (_request, reply) => ({ token: reply.generateCsrf() }))
    app.post('/transfer', { onRequest: app.csrfProtection }, async () => ({ done: true }))
  })
  const form = await get(s, '/form')
  const { token } = JSON.parse(form.body) as { token: string }
  const cookie = cookieOf(form)
  t.ok(cookie, 'the secret is kept in the session')
  t.equal((await get(s, '/transfer', cookie, 'POST', { 'x-csrf-token': token })).status, 200, 'a good token passes')
  t.equal((await get(s, '/transfer', cookie, 'POST', { 'x-csrf-token': 'forged' })).status, 403, 'a forged one does not')
})

t.test('data() leaves out the suite\'s __created, as @fastify/secure-session\'s leaves out its __ts', async (t) => {
  const s = await suite(t, [randomBytes(32).toString('base64')])
  const cookie = cookieOf(await get(s, '/login', undefined, 'POST'))
  t.same(JSON.parse((await get(s, '/me', cookie)).body).data, { user: 'alice' })
})

t.test('Fastify\'s routing() with a bare request and response (no socket), as serverless adapters call it', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(secureSession, { keys: [randomBytes(32).toString('base64')] })
  routes(app)
  await app.ready()
  const call = (method: string, url: string, cookie?: string): Promise<{ status: number, headers: Record<string, unknown>, body: string }> => new Promise((resolve, reject) => {
    const req = new IncomingMessage(undefined as never)
    req.method = method
    req.url = url
    req.headers = { host: 'app.example', ...(cookie === undefined ? {} : { cookie: `${NAME}=${cookie}` }) }
    const res = new ServerResponse(req)
    const chunks: Buffer[] = []
    let headers: Record<string, unknown> = {}
    res.writeHead = ((status: number, given?: Record<string, unknown>) => { res.statusCode = status; headers = given ?? {}; return res }) as typeof res.writeHead
    res.write = ((chunk: string | Buffer) => { chunks.push(Buffer.from(chunk)); return true }) as typeof res.write
    res.end = ((chunk?: string | Buffer) => {
      if (chunk !== undefined) chunks.push(Buffer.from(chunk))
      resolve({ status: res.statusCode, headers, body: Buffer.concat(chunks).toString() })
      return res
    }) as typeof res.end
    res.on('error', reject)
    app.routing(req, res)
    req.push(null)
  })
  const login = await call('POST', '/login')
  t.equal(login.status, 200, 'no TypeError for the missing socket')
  const cookie = cookieOf(login)
  t.ok(cookie, 'the session cookie is written')
  const me = await call('GET', '/me', cookie)
  t.same(JSON.parse(me.body), { user: 'alice', data: { user: 'alice' } })
})

t.test('fuzz: any Cookie header gives the real session or a fresh one, never an error, in time linear in its length', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(secureSession, { keys: [randomBytes(32).toString('base64')] })
  routes(app)
  await app.ready()
  const good = cookieOf(await app.inject({ method: 'POST', url: '/login' }) as unknown as Response) as string
  const goodValue = decodeURIComponent(good)
  const read = async (header: string): Promise<unknown> => {
    const response = await app.inject({ url: '/me', headers: { cookie: header } })
    if (response.statusCode !== 200) throw new Error(`status ${response.statusCode} for ${JSON.stringify(header.slice(0, 200))}`)
    return JSON.parse(response.body).user
  }
  const cookieText = fc.oneof(
    fc.string({ maxLength: 400 }),
    fc.string({ unit: 'binary', maxLength: 400 }),
    fc.constantFrom(good, goodValue, `"${good}"`, `${good};`, good.slice(0, 60), `${good}${good}`),
    fc.tuple(fc.nat({ max: goodValue.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([i, bit]) => encodeURIComponent(goodValue.slice(0, i) + String.fromCharCode(goodValue.charCodeAt(i) ^ bit) + goodValue.slice(i + 1))),
    fc.uint8Array({ maxLength: 300 }).map((bytes) => `${Buffer.from(bytes).toString('base64')};${randomBytes(24).toString('base64')}`)
  )
  await fc.assert(fc.asyncProperty(cookieText, fc.constantFrom('', 'a=1; ', `${NAME}=x; `), async (value, before) => {
    // Header values cannot carry CR, LF or NUL; anything else may arrive.
    const clean = value.replace(/[\r\n\0]/g, '')
    const user = await read(`${before}${NAME}=${clean}`)
    return user === null || user === 'alice'
  }), { numRuns: 3000 })
  t.pass('3000 cookie headers: each answered 200 with the real session or a fresh one')

  // Fitted over four lengths, interleaved, best batches kept (test/helpers/linear.ts): the whole
  // request, cookie parsing and the session's format check included, grows with the header's length.
  // Lengths far past what a server takes (Node's 16 KiB header limit; inject has none), so that the
  // header's work outweighs the request's fixed cost and a superlinear step would show.
  const grown = await growthAsync((n) => `${NAME}=${'A'.repeat(n - 32)};${'B'.repeat(31)}`, read, [262144, 524288, 1048576, 2097152], { rounds: 7, repeat: 3 })
  t.ok(grown.exponent < 1.5, `time grows as ${grown.text}: linear`)
})
