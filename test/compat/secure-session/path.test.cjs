'use strict'
// Ported from @fastify/secure-session 8.4.0, test/path.test.js (MIT, LICENSE-fastify-secure-session).
// Run against the suite's secureSession (peer.cjs); every changed expectation is marked
// `difference(...)` and explained in docs/compat.md.

const { test } = require('./peer.cjs')
const Fastify = require('fastify')
const sodium = require('./peer.cjs').sodium
const { parseSetCookie } = require('./peer.cjs').cookie
const key = Buffer.alloc(sodium.crypto_secretbox_KEYBYTES)

sodium.randombytes_buf(key)

test('sets path on the cookie', async (t) => {
  const fastify = Fastify({ logger: false })
  fastify.register(require('./peer.cjs').SecureSessionPlugin, {
    key,
    cookie: {
      path: '/'
    }
  })

  t.after(() => fastify.close())

  fastify.post('/auth', (request, reply) => {
    request.session.set('data', request.body)
    reply.send('hello world')
  })

  const response = await fastify.inject({
    method: 'POST',
    url: '/auth',
    payload: {
      some: 'data'
    }
  })
  t.assert.ok(response)
  t.assert.strictEqual(response.statusCode, 200)
  t.assert.ok(response.headers['set-cookie'])
  t.assert.strictEqual(
    parseSetCookie(response.headers['set-cookie']).path,
    '/'
  )
})
