/**
 * The `hsts` plugin: Strict-Transport-Security on responses that went out over TLS, directly or
 * through a trusted proxy, and never over plain HTTP (RFC 6797 section 7.2) or to localhost.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isLocalHostname, isProductionEnv, parseOptions } from '../schemas/common.ts'
import { hstsHeaderValue, hstsSchema, hstsWarnings, type HstsOptions } from '../schemas/hsts.ts'
import { hostnameOf } from './instance.ts'
import { addRequestStep } from './hook-chain.ts'
import { secureTest } from './secure-request.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false` leaves Strict-Transport-Security off this route's responses (fastify-secure-https). */
    hsts?: boolean
  }
}

const hstsPlugin: FastifyPluginAsync<HstsOptions> = async function hstsPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(hstsSchema, { production: isProductionEnv(process.env.NODE_ENV), ...options }, 'hsts')
  for (const warning of hstsWarnings(config)) fastify.log.warn(warning)

  const value = hstsHeaderValue(config)
  const isSecure = secureTest(fastify)
  const skipLocal = !config.localhost
  // One-entry cache: nearly every request of a site carries the same Host header.
  let lastHost: string | undefined
  let lastLocal = false

  // The per-route opt-out is settled when the route is declared: a route-level hook takes the header
  // off again, so the shared hook below reads no route options (request.routeOptions builds a new
  // object on each access). Routes are declared after the plugin, as Fastify's order has it.
  const removeHsts = function removeHsts (_request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    reply.removeHeader('strict-transport-security')
    done()
  }
  fastify.addHook('onRoute', (route) => {
    if ((route.config as { hsts?: boolean } | undefined)?.hsts !== false) return
    const own = route.onRequest
    route.onRequest = own === undefined ? [removeHsts] : [...(Array.isArray(own) ? own : [own]), removeHsts]
  })

  addRequestStep(fastify, options, 'hstsHeader', function hstsHeader (request: FastifyRequest, reply: FastifyReply) {
    if (isSecure(request)) {
      if (skipLocal) {
        const host = request.host
        if (host !== lastHost) {
          lastHost = host
          lastLocal = isLocalHostname(hostnameOf(host))
        }
        if (lastLocal) return undefined
      }
      reply.header('strict-transport-security', value)
    }
    return undefined
  })
}

/** Sends Strict-Transport-Security over HTTPS only. */
export const hsts = fp(hstsPlugin, { fastify: '5.x', name: 'fastify-secure-https/hsts' })
export default hsts
