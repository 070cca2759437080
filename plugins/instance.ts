/**
 * What a Fastify instance was constructed with, read through its public surface, for the
 * register-time checks. @internal
 */
import type { FastifyInstance } from 'fastify'

/** True when the instance's server speaks TLS (HTTPS or HTTP/2 over TLS). @internal */
export function isTlsServer (fastify: FastifyInstance): boolean {
  return typeof (fastify.server as { setSecureContext?: unknown }).setSecureContext === 'function'
}

/**
 * Host name of a Host header value, lower-cased, without port, IPv6 brackets or the trailing dot of
 * a fully qualified name (`localhost.` is localhost). @internal
 */
export function hostnameOf (host: string | undefined): string {
  if (host === undefined || host === '') return ''
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']')
    return end === -1 ? '' : host.slice(1, end).toLowerCase()
  }
  const colon = host.indexOf(':')
  let end = colon === -1 ? host.length : colon
  if (end > 1 && host.charCodeAt(end - 1) === 46 /* . */) end--
  return (end === host.length ? host : host.slice(0, end)).toLowerCase()
}
