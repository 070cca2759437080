/**
 * The `securityHeaders` plugin: helmet's headers, tightened for an HTTPS app, minus HSTS (the `hsts`
 * plugin owns it and sends it over HTTPS only).
 *
 * Helmet computes the same headers for every request unless CSP nonces are on, so the plugin runs
 * helmet once at register time, keeps what it set, and copies that list onto each reply: the cost
 * per request is a loop over a dozen precomputed strings instead of helmet's middleware chain. With
 * `enableCSPNonces`, @fastify/helmet runs per request as usual, since each response needs its own nonce.
 */
import fastifyHelmet from '@fastify/helmet'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { parseOptions } from '../schemas/common.js'
import { securityHeadersSchema, type SecurityHeadersConfig, type SecurityHeadersOptions } from '../schemas/security-headers.js'

/** The suite's CSP additions to helmet's defaults. */
export const tightenedDirectives = {
  'frame-ancestors': ["'none'"],
  'upgrade-insecure-requests': []
} as const

/** Helmet options for the resolved config. @internal */
export function helmetOptions (config: SecurityHeadersConfig): HelmetOptions {
  const { enableCSPNonces: _nonces, hsts: _hsts, strictTransportSecurity: _sts, contentSecurityPolicy, referrerPolicy, crossOriginOpenerPolicy, ...rest } = config
  let csp: HelmetOptions['contentSecurityPolicy'] = false
  if (contentSecurityPolicy !== false) {
    const user = contentSecurityPolicy === true ? {} : contentSecurityPolicy
    csp = {
      ...user,
      useDefaults: user.useDefaults ?? true,
      directives: { ...tightenedDirectives, ...(user.directives ?? {}) }
    } as HelmetOptions['contentSecurityPolicy']
  }
  return {
    ...rest,
    contentSecurityPolicy: csp,
    referrerPolicy: referrerPolicy === true ? { policy: 'strict-origin-when-cross-origin' } : referrerPolicy,
    crossOriginOpenerPolicy: crossOriginOpenerPolicy === true ? { policy: 'same-origin' } : crossOriginOpenerPolicy,
    strictTransportSecurity: false
  } as HelmetOptions
}

/** Runs helmet once against a recording response and returns the headers it sets. @internal */
export function staticHeaders (options: HelmetOptions): Array<[string, string]> {
  const headers = new Map<string, string>()
  const recorder = {
    setHeader (name: string, value: string | number | readonly string[]) {
      headers.set(name.toLowerCase(), Array.isArray(value) ? value.join(', ') : String(value))
    },
    removeHeader (name: string) { headers.delete(name.toLowerCase()) },
    getHeader (name: string) { return headers.get(name.toLowerCase()) }
  }
  let failure: unknown
  helmet(options)({ headers: {} } as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => { failure = error })
  if (failure !== undefined) throw failure
  return [...headers]
}

const securityHeadersPlugin: FastifyPluginAsync<SecurityHeadersOptions> = async function securityHeadersPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(securityHeadersSchema, options, 'securityHeaders')
  const helmetConfig = helmetOptions(config)

  if (config.enableCSPNonces) {
    await fastify.register(fastifyHelmet, { ...helmetConfig, enableCSPNonces: true, global: true } as Parameters<typeof fastifyHelmet>[1])
    return
  }

  let headers: Array<[string, string]>
  try {
    headers = staticHeaders(helmetConfig)
  } catch (error) {
    throw new Error(`securityHeaders: helmet refused the options: ${(error as Error).message}`)
  }
  const names = headers.map(([name]) => name)
  const values = headers.map(([, value]) => value)
  const count = headers.length

  fastify.addHook('onRequest', function securityHeaders (_request: FastifyRequest, reply: FastifyReply, done: () => void) {
    for (let i = 0; i < count; i++) reply.header(names[i] as string, values[i])
    done()
  })
}

/** Security headers (CSP, framing, referrer, MIME sniffing, ...), computed once. */
export const securityHeaders = fp(securityHeadersPlugin, { fastify: '5.x', name: 'fastify-secure-https/security-headers' })
export default securityHeaders
