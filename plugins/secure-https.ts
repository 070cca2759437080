/**
 * The aggregate plugin: validates the whole config once and registers each part in the order of the
 * design: tls, proxyTrust, hostAuthorization, httpsRedirect, hsts, securityHeaders, crossSite,
 * secureSession, errorHandler. Order matters: a request for an unknown host is refused before the
 * redirect, HSTS or a session sees it, and a cross-site request before the session is read. The
 * synchronous request work of several parts runs in one onRequest and one onSend hook
 * (plugins/hook-chain.ts).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { resolveConfig, type SecureHttpsConfig, type SecureHttpsOptions } from '../schemas/config.ts'
import { crossSite } from './cross-site.ts'
import { errorHandler } from './error-handler.ts'
import { hostAuthorization } from './host-authorization.ts'
import { hsts } from './hsts.ts'
import { httpsRedirect } from './https-redirect.ts'
import { metrics } from './metrics.ts'
import { proxyTrust } from './proxy-trust.ts'
import { secureSession } from './secure-session.ts'
import { securityHeaders } from './security-headers.ts'
import { tls } from './tls.ts'
import { sweepIdleConnections } from './idle-sweep.ts'
import { loadOrCreateDevSessionKey } from '../storage/dev-session-key.ts'
import { startupSummary, type StartupFacts } from './first-start.ts'
import { addChainHooks, withChain } from './hook-chain.ts'
import { isCookieSession } from '../sessions/redis-store.ts'

/** What the start-up summary reports, read from the registered plugins and TLS_DIR. */
async function gatherFacts (fastify: FastifyInstance, config: SecureHttpsConfig, session: StartupFacts['session']): Promise<StartupFacts> {
  const address = fastify.server.address()
  const tls = config.tls !== false && fastify.hasDecorator('tls') ? fastify.tls.status() : null
  const redirect = fastify.hasDecorator('httpsRedirect') && config.httpsRedirect !== false && config.httpsRedirect.mode === 'listener'
    ? { address: fastify.httpsRedirect.address(), error: fastify.httpsRedirect.error() }
    : null
  let ca: StartupFacts['ca'] = null
  let excluded: string[] = []
  let trust: StartupFacts['trust'] = null
  if (config.tls !== false && config.tls.mode === 'self-signed') {
    // Development only, after the app listens: loaded here, not on import.
    const [{ findDevCa }, { excludedHosts }, { trustStatus }] = await Promise.all([
      import('../tls/dev-ca.ts'), import('../tls/self-signed.ts'), import('../tls/trust-store.ts')
    ])
    const found = await findDevCa(config.tls.dir)
    if (found !== null) {
      ca = { certPath: found.certPath, fingerprint: found.fingerprint, notAfter: found.notAfter }
      excluded = excludedHosts(found, config.tls.hosts)
      // A certutil -L per NSS database and a file check: a few milliseconds, after the app listens.
      trust = await trustStatus({ cert: found.cert, certPath: found.certPath, interactive: false }).catch(() => null)
    }
  }
  return {
    config,
    address: typeof address === 'object' && address !== null ? address : null,
    tls,
    redirect,
    ca,
    excluded,
    trust,
    session
  }
}

const secureHttpsPlugin: FastifyPluginAsync<SecureHttpsOptions | SecureHttpsConfig> = async function secureHttpsPlugin (fastify: FastifyInstance, options) {
  const config = resolveConfig(options)
  fastify.log.info({ production: config.production },
    config.production
      ? 'fastify-secure-https: production rules on (NODE_ENV is not unset, development, dev or test)'
      : 'fastify-secure-https: development mode (NODE_ENV unset, development, dev or test); the production rules are off')
  // Hooks run in the order they were added: @fastify/cors registered before the suite answers
  // preflights in its own onRequest hook, before host authorization, HSTS and the cross-site check.
  if (fastify.hasPlugin('@fastify/cors')) {
    fastify.log.warn('@fastify/cors is registered before fastify-secure-https: its preflight answers (OPTIONS) skip host authorization and HSTS. Register secureHttps first, then @fastify/cors and the routes')
  }
  // The connection cap is a property of Node's server, not a construction option of Fastify's.
  if (config.listener !== false && config.listener.maxConnections > 0 && !Number.isFinite(fastify.server.maxConnections)) {
    fastify.server.maxConnections = config.listener.maxConnections
  }
  // connectionTimeout by a sweep of the connections instead of Node's socket timer, which costs every
  // request (plugins/idle-sweep.ts). An app that gave Fastify a connectionTimeout of its own keeps it.
  if (config.listener !== false && !(fastify.server.timeout > 0)) {
    sweepIdleConnections(fastify.server, config.listener.connectionTimeout)
  }
  // One onRequest and one onSend hook for the synchronous request work of proxy trust, host
  // authorization, HSTS, cross-site protection, the security headers and the cookie session
  // (plugins/hook-chain.ts), added
  // before any of the parts, so that they run where the first of their own hooks would have. HSTS
  // now runs before the redirect hook (HTTPS_REDIRECT_MODE=hook) instead of after it: the one acts
  // on secure requests only and the other on plain ones, so no request sees a difference.
  const chain = addChainHooks(fastify, {
    request: config.proxyTrust !== false || config.hostAuthorization !== false || config.hsts !== false || config.crossSite !== false,
    send: config.securityHeaders !== false || (config.secureSession !== false && isCookieSession(config.secureSession))
  })
  // Metrics first: they hear the certificate loaded at register time.
  if (config.metrics !== false) await fastify.register(metrics, config.metrics)
  if (config.tls !== false) await fastify.register(tls, config.tls)
  if (config.proxyTrust !== false) await fastify.register(proxyTrust, withChain(config.proxyTrust, chain))
  if (config.hostAuthorization !== false) await fastify.register(hostAuthorization, withChain(withOnDemandNames(fastify, config, config.hostAuthorization), chain))
  if (config.httpsRedirect !== false) await fastify.register(httpsRedirect, config.httpsRedirect)
  if (config.hsts !== false) await fastify.register(hsts, withChain(config.hsts, chain))
  if (config.securityHeaders !== false) await fastify.register(securityHeaders, withChain(config.securityHeaders, chain))
  if (config.crossSite !== false) await fastify.register(crossSite, withChain(config.crossSite, chain))
  // In development a session key is kept under TLS_DIR (made once, 0600), so that a restart does
  // not log the developer out; production requires SESSION_KEYS (the schema refuses to start without).
  let session: StartupFacts['session'] = { source: 'off' }
  if (config.secureSession !== false) {
    let sessionConfig = config.secureSession
    session = { source: sessionConfig.keys.length > 0 ? 'keys' : 'ephemeral' }
    if (!config.production && sessionConfig.keys.length === 0 && config.tls !== false) {
      const kept = await loadOrCreateDevSessionKey(config.tls.dir)
      sessionConfig = { ...sessionConfig, keys: [kept.key] }
      session = { source: 'dev-key', path: kept.path, created: kept.created }
    }
    await fastify.register(secureSession, withChain(sessionConfig, chain))
  }
  if (config.errorHandler !== false) await fastify.register(errorHandler, config.errorHandler)

  if (!config.production) {
    // After the redirect listener's own onListen hook (registered above, so run before this one).
    fastify.addHook('onListen', async function startupSummaryHook () {
      // Nothing to gather for a logger that would drop the line (none, silent, or warn and above).
      if (!logs(fastify, 'info')) return
      const facts = await gatherFacts(fastify, config, session)
      const { text, fields } = startupSummary(facts)
      fastify.log.info({ secureHttps: fields }, text)
    })
  }

  // The doctor's deploy checks on this very config, summed up once: a warning in production, where
  // each one matters, and a debug line in development, where most fail by design (skipped, with the
  // doctor's code left unloaded, when the logger would drop that line).
  fastify.addHook('onReady', async function doctorSummary () {
    if (!config.production && !logs(fastify, 'debug')) return
    try {
      const { doctorConfig } = await import('../audit/doctor.ts')
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

/** The standard levels' order, for a logger that is not pino (pino answers with its own table). */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 }

/**
 * True when the instance's logger writes lines of `level`: pino's `isLevelEnabled` (custom levels
 * included), else the standard order; false for Fastify's null logger (`logger: false`).
 */
function logs (fastify: FastifyInstance, level: 'debug' | 'info'): boolean {
  const log = fastify.log as typeof fastify.log & { isLevelEnabled?: (level: string) => boolean }
  if (typeof log.isLevelEnabled === 'function') return log.isLevelEnabled(level)
  const current = LEVELS[log.level as string]
  return current !== undefined && current <= (LEVELS[level] as number)
}

/**
 * With on-demand TLS, host authorization also accepts the names the ask check allowed (or whose
 * certificate is stored): one Set lookup, asked only for hosts that are not in ALLOWED_HOSTS.
 */
function withOnDemandNames (fastify: FastifyInstance, config: SecureHttpsConfig, options: Exclude<SecureHttpsConfig['hostAuthorization'], false>): typeof options {
  if (config.tls === false || config.tls.mode !== 'acme' || config.tls.acme.onDemand === undefined || !fastify.hasDecorator('tls')) return options
  const names = fastify.tls.onDemandNames()
  const own = options.isAllowed
  return { ...options, isAllowed: own === undefined ? (host) => names.has(host) : (host) => names.has(host) || own(host) }
}

/**
 * HTTPS done right, in one registration: `app.register(secureHttps, loadConfig(process.env))`.
 * Each section of the options can be `false` to leave that part out.
 */
export const secureHttps = fp(secureHttpsPlugin, { fastify: '5.x', name: 'fastify-secure-https' })
export default secureHttps
