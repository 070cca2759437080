'use strict'
// Ported from @fastify/secure-session 8.4.0, test/fastify-cookie.test.js (MIT, LICENSE-fastify-secure-session).
// Run against the suite's secureSession (peer.cjs); every changed expectation is marked
// `difference(...)` and explained in docs/compat.md.

const { test } = require('./peer.cjs')
const sodium = require('./peer.cjs').sodium
const key = Buffer.alloc(sodium.crypto_secretbox_KEYBYTES)
sodium.randombytes_buf(key)

test('not to register `@fastify/cookie` when it is already registered', async t => {
  const fastify = require('fastify')({
    logger: false
  })
  t.after(() => fastify.close())

  await fastify.register(require('@fastify/cookie'), {
    secret: 'my-secret', // for cookies signature
    parseOptions: {} // options for parsing cookies
  })

  t.assert.doesNotReject(() => fastify.register(require('./peer.cjs').SecureSessionPlugin, {
    key
  }).after())
})
