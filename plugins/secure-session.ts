/**
 * The `secureSession` plugin: encrypted cookie sessions (@fastify/secure-session, libsodium
 * secretbox) with the cookie settings browsers enforce for a login cookie.
 */
import fastifySecureSession from '@fastify/secure-session'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { randomBytes } from 'node:crypto'
import { parseOptions } from '../schemas/common.js'
import { effectiveCookieName, SESSION_KEY_BYTES, secureSessionSchema, type SecureSessionOptions } from '../schemas/secure-session.js'

const secureSessionPlugin: FastifyPluginAsync<SecureSessionOptions> = async function secureSessionPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(secureSessionSchema, { production: process.env.NODE_ENV === 'production', ...options }, 'secureSession')
  let keys = config.keys
  if (keys.length === 0) {
    keys = [randomBytes(SESSION_KEY_BYTES)]
    fastify.log.warn('SESSION_KEYS is not set: sessions use a random key made at start and will NOT survive a restart, nor work across instances. Set SESSION_KEYS (openssl rand -base64 32)')
  }
  const cookieName = effectiveCookieName(config)
  if (!config.secure) {
    fastify.log.warn(`the session cookie "${cookieName}" is sent without the Secure flag and without the __Host- prefix because TLS is off (TLS_MODE=off); anyone on the network can read it. Development only`)
  }
  const cookie: Record<string, unknown> = {
    path: '/',
    httpOnly: true,
    secure: config.secure,
    sameSite: config.sameSite,
    maxAge: config.maxAge
  }
  if (config.domain !== undefined) cookie.domain = config.domain
  await fastify.register(fastifySecureSession, {
    key: keys,
    cookieName,
    expiry: config.maxAge,
    cookie
  })
}

/** Encrypted cookie sessions with hardened defaults (`__Host-session`, Secure, HttpOnly, SameSite=Lax). */
export const secureSession = fp(secureSessionPlugin, { fastify: '5.x', name: 'fastify-secure-https/secure-session' })
export default secureSession
