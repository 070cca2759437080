/**
 * The aggregate plugin: validates the whole config once and registers each part in the order of the
 * design: tls, proxyTrust, httpsRedirect, hsts, securityHeaders, secureSession, errorHandler.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { doctorConfig } from '../audit/doctor.js'
import { resolveConfig, type SecureHttpsConfig, type SecureHttpsOptions } from '../schemas/config.js'
import { errorHandler } from './error-handler.js'
import { hsts } from './hsts.js'
import { httpsRedirect } from './https-redirect.js'
import { metrics } from './metrics.js'
import { proxyTrust } from './proxy-trust.js'
import { secureSession } from './secure-session.js'
import { securityHeaders } from './security-headers.js'
import { tls } from './tls.js'

const secureHttpsPlugin: FastifyPluginAsync<SecureHttpsOptions | SecureHttpsConfig> = async function secureHttpsPlugin (fastify: FastifyInstance, options) {
  const config = resolveConfig(options)
  fastify.log.info({ production: config.production },
    config.production
      ? 'fastify-secure-https: production rules on (NODE_ENV is not unset, development, dev or test)'
      : 'fastify-secure-https: development mode (NODE_ENV unset, development, dev or test); the production rules are off')
  // Metrics first: they hear the certificate loaded at register time.
  if (config.metrics !== false) await fastify.register(metrics, config.metrics)
  if (config.tls !== false) await fastify.register(tls, config.tls)
  if (config.proxyTrust !== false) await fastify.register(proxyTrust, config.proxyTrust)
  if (config.httpsRedirect !== false) await fastify.register(httpsRedirect, config.httpsRedirect)
  if (config.hsts !== false) await fastify.register(hsts, config.hsts)
  if (config.securityHeaders !== false) await fastify.register(securityHeaders, config.securityHeaders)
  if (config.secureSession !== false) await fastify.register(secureSession, config.secureSession)
  if (config.errorHandler !== false) await fastify.register(errorHandler, config.errorHandler)

  // The doctor's deploy checks on this very config, summed up once: a warning in production, where
  // each one matters, and a debug line in development, where most fail by design.
  fastify.addHook('onReady', async function doctorSummary () {
    try {
      const report = await doctorConfig(config)
      const failed = report.checks.filter((check) => check.status === 'fail' && check.severity !== 'info')
      if (failed.length === 0) return
      const doctor = failed.map(({ id, severity, message }) => ({ id, severity, message }))
      const message = `fastify-secure-https doctor: ${failed.length} check${failed.length === 1 ? '' : 's'} failed (${failed.map((check) => check.id).join(', ')}); ` +
        'run `npx fastify-secure-https doctor` with the same environment for the fixes'
      if (config.production) fastify.log.warn({ doctor }, message)
      else fastify.log.debug({ doctor }, message)
    } catch (error) {
      fastify.log.debug({ err: error }, 'fastify-secure-https doctor: the checks could not run')
    }
  })
}

/**
 * HTTPS done right, in one registration: `app.register(secureHttps, loadConfig(process.env))`.
 * Each section of the options can be `false` to leave that part out.
 */
export const secureHttps = fp(secureHttpsPlugin, { fastify: '5.x', name: 'fastify-secure-https' })
export default secureHttps
