/**
 * The `tls` plugin: applies the configured certificate and TLS profile to the server, swaps in new
 * certificates without a restart (`server.setSecureContext()`; connections in flight keep theirs),
 * and reports the certificate's status and expiry.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { SecureContextOptions } from 'node:tls'
import { channels } from '../diagnostics.js'
import { ERR_INSTANCE_MISMATCH } from '../errors.js'
import { parseOptions } from '../schemas/common.js'
import { tlsSchema, type TlsConfig, type TlsMode, type TlsOptions, type TlsProfile } from '../schemas/tls.js'
import { pairDigest } from '../tls/files-source.js'
import { chainWarnings, uncoveredHosts, type CertificateInfo } from '../tls/inspect.js'
import { secureContextOptions } from '../tls/profiles.js'
import { takePreparedSource } from '../server-options.js'
import { SELF_SIGNED_RENEW_DAYS } from '../tls/self-signed.js'
import type { CertificatePair, CertificateSource } from '../tls/source.js'
import { createSource, terminatesTls } from '../tls/sources.js'
import { acmeChallenges } from './acme-challenge.js'
import { securityEvent } from './events.js'
import { isTlsServer } from './instance.js'

/** What `fastify.tls.status()` reports: the certificate being served, and the history of reloads. */
export interface TlsStatus extends CertificateInfo {
  mode: TlsMode
  /** Where the certificate comes from: the files, the cache directory, or the ACME directory. */
  source: string
  profile: TlsProfile
  http2: boolean
  /** When the certificate being served was applied. */
  loadedAt: Date
  /** Last successful reload after start, or null. */
  lastReload: Date | null
  /** Message of the last failed reload, or null once a later one succeeds. */
  lastReloadError: string | null
  /** When the last reload failed, or null once a later one succeeds. */
  lastReloadErrorAt: Date | null
  /**
   * What is wrong with the certificate being served but does not stop it from serving: names in
   * ALLOWED_HOSTS it does not cover, a chain without its intermediates, an intermediate out of date.
   */
  warnings: string[]
  /** `shared` when TLS_TICKET_KEYS is set (instances resume each other's sessions), else `per-process`. */
  sessionTickets: 'shared' | 'per-process'
}

/** The `fastify.tls` decorator. */
export interface TlsControl {
  /** The certificate being served and the history of reloads. */
  status (): TlsStatus
  /**
   * Reads the source again and applies the pair if it is valid and new. Rejects (and keeps the
   * current certificate) when the new pair is unusable.
   */
  reload (): Promise<TlsStatus>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** TLS status and manual reload, from fastify-secure-https. */
    tls: TlsControl
  }
}

const DAY = 86_400_000
const EXPIRY_CHECK_EVERY = 6 * 3600_000

interface Hooks {
  /** Replaces the source, for tests and for the ACME plugin's temporary certificate. @internal */
  source?: CertificateSource
  /** How often the certificate's expiry is checked, in ms (default 6 hours); tests shorten it. @internal */
  expiryCheckEvery?: number
}

function mismatch (config: TlsConfig): Error {
  return new ERR_INSTANCE_MISMATCH(
    `TLS_MODE=${config.mode} needs an HTTPS server, but this Fastify instance is plain HTTP. ` +
    'Build it with the suite\'s options: Fastify({ ...(await serverOptions(config)) })'
  )
}

const tlsPlugin: FastifyPluginAsync<TlsOptions & Hooks> = async function tlsPlugin (fastify: FastifyInstance, options) {
  const { source: injected, expiryCheckEvery = EXPIRY_CHECK_EVERY, ...rest } = options
  const config = parseOptions(tlsSchema, rest, 'tls')

  if (!terminatesTls(config.mode)) {
    if (isTlsServer(fastify)) {
      throw new ERR_INSTANCE_MISMATCH(`TLS_MODE=${config.mode} means no TLS in this process, but the instance is an HTTPS server; build it with Fastify({ ...(await serverOptions(config)) }) or choose another TLS_MODE`)
    }
    return
  }
  if (!isTlsServer(fastify)) throw mismatch(config)
  if (Boolean(fastify.initialConfig.http2) !== config.http2) {
    throw new ERR_INSTANCE_MISMATCH(config.http2
      ? 'HTTP2=true but the instance is HTTP/1.1; build it with Fastify({ ...(await serverOptions(config)) }), which sets http2: true'
      : 'the instance is HTTP/2 but HTTP2 is not set in the config; set HTTP2=true (tls.http2) or build the instance without http2')
  }

  const server = fastify.server as unknown as { setSecureContext (options: SecureContextOptions): void, getTicketKeys? (): Buffer }
  // The source serverOptions() loaded for this instance, if any: the certificate is not loaded twice.
  const handOver = injected === undefined ? takePreparedSource(config) : undefined
  const source = injected ?? handOver?.source ?? createSource(config)
  if (config.mode === 'acme') acmeChallenges(fastify, source)
  // The self-signed source renews at SELF_SIGNED_RENEW_DAYS left; warning before that would be noise.
  const thresholds = [...config.expiryWarningDays]
    .filter((days) => config.mode !== 'self-signed' || days < SELF_SIGNED_RENEW_DAYS)
    .sort((a, b) => a - b)
  const warned = new Set<number>()
  let current: CertificatePair = handOver?.pair ?? await source.load()
  let loadedAt = new Date()
  let lastReload: Date | null = null
  let lastReloadError: string | null = null
  let lastReloadErrorAt: Date | null = null
  let warnings: string[] = []

  function apply (pair: CertificatePair): void {
    // setSecureContext() builds the context from these options alone: the profile must be passed
    // again, or Node's defaults (CBC suites, RSA key exchange) come back. Without shared keys, the
    // server's own ticket keys are carried over so sessions resume across a reload too.
    const context = secureContextOptions(config.profile, config.ticketKeys, pair)
    if (context.ticketKeys === undefined && typeof server.getTicketKeys === 'function') context.ticketKeys = server.getTicketKeys()
    server.setSecureContext(context)
    current = pair
    loadedAt = new Date()
    warned.clear()
    warnings = certificateWarnings(pair)
    for (const warning of warnings) fastify.log.warn({ fingerprint: pair.info.fingerprint }, `TLS certificate: ${warning}`)
  }

  function certificateWarnings (pair: CertificatePair): string[] {
    const found = chainWarnings(pair.cert)
    const missing = uncoveredHosts(pair.info.sans, config.hosts)
    // ACME certifies ACME_DOMAINS; the names it leaves out are that plugin's to report.
    if (missing.length > 0 && config.mode !== 'acme') {
      found.push(`it does not cover ${missing.join(', ')} from ALLOWED_HOSTS, so browsers will refuse those names; get a certificate that lists them, or remove them from ALLOWED_HOSTS`)
    }
    return found
  }

  function checkExpiry (): void {
    const daysLeft = (current.info.notAfter.getTime() - Date.now()) / DAY
    for (const threshold of thresholds) {
      if (daysLeft <= threshold) {
        if (!warned.has(threshold)) {
          warned.add(threshold)
          securityEvent(fastify.log, 'tls.expiring', { daysLeft: Math.floor(daysLeft), notAfter: current.info.notAfter.toISOString(), fingerprint: current.info.fingerprint, mode: config.mode },
            `TLS certificate expires in ${Math.max(0, Math.floor(daysLeft))} days (${current.info.notAfter.toISOString()})`)
        }
        break
      }
    }
  }

  function onUpdate (pair: CertificatePair, reason: string): void {
    try {
      apply(pair)
    } catch (error) {
      // Node refused the pair (an option OpenSSL rejects); the previous context is still in place.
      onError(error as Error)
      return
    }
    lastReload = loadedAt
    lastReloadError = null
    lastReloadErrorAt = null
    if (channels.certificate.hasSubscribers) channels.certificate.publish({ action: 'reloaded', name: 'default', source: config.mode, notAfter: pair.info.notAfter, fingerprint: pair.info.fingerprint })
    fastify.log.info({ fingerprint: pair.info.fingerprint, notAfter: pair.info.notAfter.toISOString(), reason }, 'TLS certificate reloaded')
    checkExpiry()
  }

  function onError (error: Error): void {
    lastReloadError = error.message
    lastReloadErrorAt = new Date()
    if (channels.certificate.hasSubscribers) channels.certificate.publish({ action: 'reload-failed', name: 'default', source: config.mode, error: error.message })
    securityEvent(fastify.log, 'tls.reload-failed', { reason: error.message, mode: config.mode, servingFingerprint: current.info.fingerprint },
      `TLS certificate reload failed, still serving the previous certificate: ${error.message}`)
  }

  apply(current)
  if (channels.certificate.hasSubscribers) channels.certificate.publish({ action: 'loaded', name: 'default', source: config.mode, notAfter: current.info.notAfter, fingerprint: current.info.fingerprint })
  const sourceDescription = config.mode === 'files'
    ? `files: ${[config.certFile, config.keyFile, config.caFile].filter((p) => p !== undefined).join(', ')}`
    : config.mode === 'acme' ? `acme: ${config.acme.directory}` : `${config.mode}: ${config.dir}`
  // Manual reloads and source updates are applied one at a time, in order.
  let reloading: Promise<unknown> = Promise.resolve()

  const control: TlsControl = {
    status () {
      const { info } = current
      return {
        mode: config.mode,
        source: injected === undefined ? sourceDescription : `${source.mode}: provided source`,
        profile: config.profile,
        http2: config.http2,
        ...info,
        sans: info.sans.slice(),
        loadedAt,
        lastReload,
        lastReloadError,
        lastReloadErrorAt,
        warnings: warnings.slice(),
        sessionTickets: config.ticketKeys.length === 0 ? 'per-process' : 'shared'
      }
    },
    reload () {
      const run = reloading.then(async () => {
        let pair: CertificatePair
        try {
          pair = await source.load()
        } catch (error) {
          onError(error as Error)
          throw error
        }
        if (pairDigest(pair) !== pairDigest(current)) {
          onUpdate(pair, 'manual reload')
          if (current !== pair) throw new Error(lastReloadError ?? 'the new certificate could not be applied')
        }
        return control.status()
      })
      reloading = run.catch(() => {})
      return run
    }
  }
  fastify.decorate('tls', control)

  let expiryTimer: NodeJS.Timeout | undefined
  fastify.addHook('onReady', async () => {
    source.start({ update: onUpdate, error: onError })
    checkExpiry()
    expiryTimer = setInterval(checkExpiry, expiryCheckEvery)
    expiryTimer.unref()
  })
  fastify.addHook('onClose', async () => {
    if (expiryTimer !== undefined) clearInterval(expiryTimer)
    await source.stop()
  })
}

/**
 * Certificates for the server: self-signed in development, files with hot reload, or ACME.
 * Register it on an instance built with `serverOptions(config)`.
 */
export const tls = fp(tlsPlugin, { fastify: '5.x', name: 'fastify-secure-https/tls' })
export default tls
