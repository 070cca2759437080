/**
 * What a Fastify instance was constructed with, read through its public surface, for the
 * register-time checks. @internal
 */
import type { FastifyInstance } from 'fastify'

/** True when the instance's server speaks TLS (HTTPS or HTTP/2 over TLS). @internal */
export function isTlsServer (fastify: FastifyInstance): boolean {
  return typeof (fastify.server as { setSecureContext?: unknown }).setSecureContext === 'function'
}

/** Host name of a Host header value, lower-cased, without port or IPv6 brackets. @internal */
export function hostnameOf (host: string | undefined): string {
  if (host === undefined || host === '') return ''
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']')
    return end === -1 ? '' : host.slice(1, end).toLowerCase()
  }
  const colon = host.indexOf(':')
  return (colon === -1 ? host : host.slice(0, colon)).toLowerCase()
}
