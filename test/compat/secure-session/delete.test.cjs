'use strict'
// Ported from @fastify/secure-session 8.4.0, test/delete.test.js (MIT, LICENSE-fastify-secure-session).
// Run against the suite's secureSession (peer.cjs); every changed expectation is marked
// `difference(...)` and explained in docs/compat.md.

const { test, difference } = require('./peer.cjs')
const Fastify = require('fastify')
const sodium = require('./peer.cjs').sodium
const { parseSetCookie } = require('./peer.cjs').cookie
const key = Buffer.alloc(sodium.crypto_secretbox_KEYBYTES)
const expires = new Date(Date.now() + 86400 * 1000)
const expiresUTC = expires.toUTCString()

sodium.randombytes_buf(key)

test('Deletes the cookie', async (t) => {
  const fastify = Fastify({ logger: false })

  fastify.register(require('./peer.cjs').SecureSessionPlugin, {
    key,
    cookie: {
      path: '/',
      expires,
      maxAge: 86400
    }
  })

  fastify.post('/', (request, reply) => {
    request.session.set('some', request.body.some)
    request.session.set('some2', request.body.some2)
    reply.send('hello world')
  })

  fastify.post('/delete', (request, reply) => {
    request.session.delete()
    reply.send('hello world')
  })

  t.after(() => fastify.close())

  fastify.get('/', (request, reply) => {
    const some = request.session.get('some')
    const some2 = request.session.get('some2')
    if (!some || !some2) {
      reply.code(404).send()
      return
    }
    reply.send({ some, some2 })
  })

  const postResponse = await fastify.inject({
    method: 'POST',
    url: '/',
    payload: {
      some: 'someData',
      some2: { a: 1, b: undefined, c: 3 }
    }
  })
  t.assert.ok(postResponse)
  t.assert.strictEqual(postResponse.statusCode, 200)
  t.assert.ok(postResponse.headers['set-cookie'])
  t.assert.strictEqual(
    parseSetCookie(postResponse.headers['set-cookie']).path,
    '/'
  )
  t.assert.strictEqual(
    parseSetCookie(postResponse.headers['set-cookie']).expires,
    undefined,
    difference('Cookie attributes: a fixed Expires is not written; Max-Age is the remaining lifetime (configured ' + expiresUTC + ')')
  )
  t.assert.strictEqual(
    parseSetCookie(postResponse.headers['set-cookie']).maxAge,
    86400
  )

  const getResponse = await fastify.inject({
    method: 'GET',
    url: '/',
    headers: {
      cookie: postResponse.headers['set-cookie']
    }
  })
  t.assert.ok(getResponse)
  t.assert.deepStrictEqual(JSON.parse(getResponse.payload), {
    some: 'someData',
    some2: { a: 1, c: 3 }
  })

  const deleteResponse = await fastify.inject({
    method: 'POST',
    url: '/delete',
    headers: {
      cookie: postResponse.headers['set-cookie']
    }
  })
  t.assert.ok(deleteResponse)
  t.assert.strictEqual(deleteResponse.statusCode, 200)
  t.assert.ok(deleteResponse.headers['set-cookie'])
  t.assert.strictEqual(
    parseSetCookie(deleteResponse.headers['set-cookie']).path,
    '/'
  )
  t.assert.strictEqual(
    parseSetCookie(deleteResponse.headers['set-cookie']).expires.toUTCString(),
    'Thu, 01 Jan 1970 00:00:00 GMT'
  )
  t.assert.strictEqual(
    parseSetCookie(deleteResponse.headers['set-cookie']).maxAge,
    0
  )
})
