'use strict'
// Ported from @fastify/csrf-protection 8.x, the @fastify/secure-session parts of test/basic.test.js
// and test/user-info.test.js (MIT, LICENSE-fastify-csrf-protection): @fastify/csrf-protection in
// its '@fastify/secure-session' mode on the suite's secureSession, registered as a migrating user
// would (../secure-session/peer.cjs). No expectation is changed.

const { test, SecureSessionPlugin: fastifySecureSession, sodium } = require('../secure-session/peer.cjs')
const Fastify = require('fastify')
const fastifyCsrf = require('@fastify/csrf-protection')

const key = Buffer.alloc(sodium.crypto_secretbox_KEYBYTES)
sodium.randombytes_buf(key)

test('Fastify Secure Session', async t => {
  async function load () {
    const fastify = Fastify()
    await fastify.register(fastifySecureSession, { key, cookie: { path: '/', secure: false } })
    await fastify.register(fastifyCsrf, { sessionPlugin: '@fastify/secure-session' })
    fastify.decorate('testType', 'fastify-secure-session')
    return fastify
  }
  await runtTest(t, load, { property: '_csrf', place: 'body' }, 'preValidation')
  await runtTest(t, load, { property: 'csrf-token', place: 'headers' })
  await runtTest(t, load, { property: 'xsrf-token', place: 'headers' })
  await runtTest(t, load, { property: 'x-csrf-token', place: 'headers' })
  await runtTest(t, load, { property: 'x-xsrf-token', place: 'headers' })
  await runCookieOpts(t, load)
})

test('SecureSession with User-Info', async t => {
  const fastify = Fastify()
  await fastify.register(fastifySecureSession, { key, cookie: { path: '/', secure: false } })
  await fastify.register(fastifyCsrf, {
    sessionPlugin: '@fastify/secure-session',
    getUserInfo (req) {
      return req.session.get('username')
    },
    csrfOpts: {
      hmacKey: 'foo'
    }
  })

  fastify.post('/login', async (req, reply) => {
    req.session.set('username', req.body.username)
    const token = reply.generateCsrf({ userInfo: req.body.username })
    return { token }
  })

  // must be preHandler as we are parsing the body
  fastify.post('/', { preHandler: fastify.csrfProtection }, async (req) => {
    return req.body
  })

  const response1 = await fastify.inject({
    method: 'POST',
    path: '/login',
    body: {
      username: 'foo'
    }
  })

  t.assert.strictEqual(response1.statusCode, 200)

  const cookie1 = response1.cookies[0]
  const { token } = response1.json()

  const response2 = await fastify.inject({
    method: 'POST',
    path: '/',
    cookies: {
      session: cookie1.value
    },
    body: {
      _csrf: token,
      username: 'foo'
    }
  })

  t.assert.strictEqual(response2.statusCode, 200)
})

test('Validate presence of hmac key with User-Info /5', async (t) => {
  const fastify = Fastify()
  await fastify.register(fastifySecureSession, { key, cookie: { path: '/', secure: false } })

  await t.assert.doesNotReject(new Promise((resolve, reject) => {
    fastify.register(fastifyCsrf, {
      getUserInfo (req) {
        return req.session.get('username')
      },
      sessionPlugin: '@fastify/secure-session'
    }).then(() => {
      resolve()
    }).catch(err => {
      reject(err)
    })
  }))
})

test('Validate presence of hmac key with User-Info /6', async (t) => {
  const fastify = Fastify()
  await fastify.register(fastifySecureSession, { key, cookie: { path: '/', secure: false } })

  await t.assert.doesNotReject(new Promise((resolve, reject) => {
    fastify.register(fastifyCsrf, {
      getUserInfo (req) {
        return req.session.get('username')
      },
      sessionPlugin: '@fastify/secure-session',
      csrfOpts: {
        hmacKey: 'foo'
      }
    }).then(() => {
      resolve()
    }).catch(err => {
      reject(err)
    })
  }))
})

async function runtTest (t, load, tkn, hook = 'onRequest') {
  await t.test(`Token in ${tkn.place}`, async t => {
    const fastify = await load()

    fastify.get('/', async (_req, reply) => {
      const token = reply.generateCsrf()
      return { token }
    })

    fastify.post('/', { [hook]: fastify.csrfProtection }, async (req) => {
      return req.body
    })

    let response = await fastify.inject({
      method: 'GET',
      path: '/'
    })

    t.assert.strictEqual(response.statusCode, 200)
    const cookie = response.cookies[0]
    const tokenFirst = response.json().token

    response = await fastify.inject({
      method: 'GET',
      path: '/',
      cookies: {
        [cookie.name]: cookie.value
      }
    })

    t.assert.strictEqual(response.statusCode, 200)
    const cookieSecond = response.cookies[0]
    const token = response.json().token

    if (fastify.testType === 'fastify-session') {
      t.assert.deepStrictEqual(cookie, cookieSecond)
    } else if (fastify.testType === 'fastify-secure-session') {
      t.assert.notStrictEqual(cookie, cookieSecond)
    } else {
      t.assert.strictEqual(cookieSecond, undefined)
    }
    t.assert.notStrictEqual(tokenFirst, token)

    if (tkn.place === 'body') {
      response = await fastify.inject({
        method: 'POST',
        path: '/',
        payload: {
          hello: 'world',
          [tkn.property]: token
        },
        cookies: {
          [cookie.name]: cookie.value
        }
      })
    } else {
      response = await fastify.inject({
        method: 'POST',
        path: '/',
        payload: { hello: 'world' },
        headers: {
          [tkn.property]: token
        },
        cookies: {
          [cookie.name]: cookie.value
        }
      })
    }

    t.assert.strictEqual(response.statusCode, 200)
    t.assert.strictEqual(response.json().hello, 'world')

    response = await fastify.inject({
      method: 'POST',
      path: '/',
      payload: { hello: 'world' }
    })

    t.assert.strictEqual(response.statusCode, 403)
    t.assert.strictEqual(response.json().message, 'Missing csrf secret')

    response = await fastify.inject({
      method: 'POST',
      path: '/',
      payload: { hello: 'world' },
      cookies: {
        [cookie.name]: cookie.value
      }
    })

    t.assert.strictEqual(response.statusCode, 403)
    t.assert.strictEqual(response.json().message, 'Invalid csrf token')
  })
}

async function runCookieOpts (t, load) {
  await t.test('Custom cookie options', async t => {
    const fastify = await load()

    fastify.get('/', async (_req, reply) => {
      const token = reply.generateCsrf({ path: '/hello' })
      return { token }
    })

    const response = await fastify.inject({
      method: 'GET',
      path: '/'
    })

    const cookie = response.cookies[0]
    t.assert.strictEqual(cookie.path, '/hello')
  })
}
