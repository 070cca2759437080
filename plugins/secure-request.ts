/**
 * How the other plugins tell whether a request arrived over HTTPS. @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'

/** True when the request arrived over TLS, directly or through a trusted proxy. @internal */
export type SecureTest = (request: FastifyRequest) => boolean

/**
 * Chooses the test once, at register time: the proxyTrust plugin's `request.secure` when it is
 * registered (it also understands RFC 7239 Forwarded), Fastify's `request.protocol` otherwise.
 * @internal
 */
export function secureTest (fastify: FastifyInstance): SecureTest {
  if (fastify.hasRequestDecorator('secure')) return (request) => request.secure
  return (request) => request.protocol === 'https'
}
