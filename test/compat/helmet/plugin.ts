/**
 * What @fastify/helmet's test suite registers as `helmet`: the suite's securityHeaders, with
 * `responseKind: 'html'`, the setting under which every answer gets helmet's full set as with
 * @fastify/helmet (the suite's routes answer JSON, which otherwise gets the short API set; that
 * default is tested in test/security-headers-kinds.test.ts). docs/compat.md lists the differences.
 */
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { securityHeaders, type SecurityHeadersOptions } from '../../../index.ts'

const asHelmet: FastifyPluginAsync<SecurityHeadersOptions> = async function asHelmet (fastify, options) {
  await fastify.register(securityHeaders, { responseKind: 'html', ...options })
}

const helmet: typeof securityHeaders = Object.assign(fp(asHelmet, { fastify: '5.x', name: 'helmet-as-security-headers' }), {
  contentSecurityPolicy: securityHeaders.contentSecurityPolicy
})
export default helmet
