/**
 * The `tls` plugin: applies the configured certificate and TLS profile to the server, swaps in new
 * certificates without a restart (`server.setSecureContext()`; connections in flight keep theirs),
 * and reports the certificate's status and expiry.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { SecureContextOptions } from 'node:tls'
import { ERR_INSTANCE_MISMATCH } from '../errors.js'
import { parseOptions } from '../schemas/common.js'
import { tlsSchema, type TlsConfig, type TlsMode, type TlsOptions, type TlsProfile } from '../schemas/tls.js'
import { uncoveredHosts } from '../tls/inspect.js'
import { profileOptions } from '../tls/profiles.js'
import type { CertificatePair, CertificateSource } from '../tls/source.js'
import { createSource, terminatesTls } from '../tls/sources.js'
import { securityEvent } from './events.js'
import { constructionOptions, isTlsServer } from './instance.js'

/** What `fastify.tls.status()` reports. */
export interface TlsStatus {
  mode: TlsMode
  profile: TlsProfile
  http2: boolean
  subject: string
  issuer: string
  sans: string[]
  notBefore: Date
  notAfter: Date
  /** SHA-256 fingerprint of the certificate being served. */
  fingerprint: string
  keyType: string
  selfSigned: boolean
  /** When the certificate being served was applied. */
  loadedAt: Date
  /** Last successful reload after start, or null. */
  lastReload: Date | null
  /** Message of the last failed reload, or null once a later one succeeds. */
  lastReloadError: string | null
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
}

function mismatch (config: TlsConfig): Error {
  return new ERR_INSTANCE_MISMATCH(
    `TLS_MODE=${config.mode} needs an HTTPS server, but this Fastify instance is plain HTTP. ` +
    'Build it with the suite\'s options: Fastify({ ...(await serverOptions(config)) })'
  )
}

const tlsPlugin: FastifyPluginAsync<TlsOptions & Hooks> = async function tlsPlugin (fastify: FastifyInstance, options) {
  const { source: injected, ...rest } = options
  const config = parseOptions(tlsSchema, rest, 'tls')

  if (!terminatesTls(config.mode)) {
    if (isTlsServer(fastify)) {
      throw new ERR_INSTANCE_MISMATCH(`TLS_MODE=${config.mode} means no TLS in this process, but the instance is an HTTPS server; build it with Fastify({ ...(await serverOptions(config)) }) or choose another TLS_MODE`)
    }
    return
  }
  if (!isTlsServer(fastify)) throw mismatch(config)
  const constructed = constructionOptions(fastify)
  if (constructed !== undefined && Boolean(constructed.http2) !== config.http2) {
    throw new ERR_INSTANCE_MISMATCH(config.http2
      ? 'HTTP2=true but the instance is HTTP/1.1; build it with Fastify({ ...(await serverOptions(config)) }), which sets http2: true'
      : 'the instance is HTTP/2 but HTTP2 is not set in the config; set HTTP2=true (tls.http2) or build the instance without http2')
  }

  const server = fastify.server as unknown as { setSecureContext (options: SecureContextOptions): void, setTicketKeys? (keys: Buffer): void }
  const source = injected ?? createSource(config)
  const profile = profileOptions(config.profile)
  const warned = new Set<number>()
  let current: CertificatePair = await source.load()
  let loadedAt = new Date()
  let lastReload: Date | null = null
  let lastReloadError: string | null = null

  function apply (pair: CertificatePair): void {
    const context: SecureContextOptions = { ...profile, key: pair.key, cert: pair.cert }
    if (pair.ca !== undefined) context.ca = pair.ca
    if (pair.passphrase !== undefined) context.passphrase = pair.passphrase
    server.setSecureContext(context)
    current = pair
    loadedAt = new Date()
    warned.clear()
  }

  function checkExpiry (): void {
    const daysLeft = (current.info.notAfter.getTime() - Date.now()) / DAY
    for (const threshold of [...config.expiryWarningDays].sort((a, b) => a - b)) {
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
    apply(pair)
    lastReload = loadedAt
    lastReloadError = null
    fastify.log.info({ fingerprint: pair.info.fingerprint, notAfter: pair.info.notAfter.toISOString(), reason }, 'TLS certificate reloaded')
    checkExpiry()
  }

  function onError (error: Error): void {
    lastReloadError = error.message
    securityEvent(fastify.log, 'tls.reload-failed', { reason: error.message, mode: config.mode, servingFingerprint: current.info.fingerprint },
      `TLS certificate reload failed, still serving the previous certificate: ${error.message}`)
  }

  apply(current)
  if (config.ticketKeys[0] !== undefined && typeof server.setTicketKeys === 'function') {
    // Node holds one ticket key set; the newest one encrypts, so instances sharing it resume each other's sessions.
    server.setTicketKeys(config.ticketKeys[0])
  }
  const missing = uncoveredHosts(current.info.sans, config.hosts)
  if (missing.length > 0 && config.mode !== 'acme') {
    fastify.log.warn({ missing }, `the TLS certificate does not cover ${missing.join(', ')} (ALLOWED_HOSTS); browsers will refuse those names`)
  }

  const control: TlsControl = {
    status () {
      const { info } = current
      return {
        mode: config.mode,
        profile: config.profile,
        http2: config.http2,
        subject: info.subject,
        issuer: info.issuer,
        sans: info.sans.slice(),
        notBefore: info.notBefore,
        notAfter: info.notAfter,
        fingerprint: info.fingerprint,
        keyType: info.keyType,
        selfSigned: info.selfSigned,
        loadedAt,
        lastReload,
        lastReloadError
      }
    },
    async reload () {
      let pair: CertificatePair
      try {
        pair = await source.load()
      } catch (error) {
        onError(error as Error)
        throw error
      }
      if (pair.info.fingerprint !== current.info.fingerprint || pair.key !== current.key) onUpdate(pair, 'manual reload')
      return control.status()
    }
  }
  fastify.decorate('tls', control)

  let expiryTimer: NodeJS.Timeout | undefined
  fastify.addHook('onReady', async () => {
    source.start({ update: onUpdate, error: onError })
    checkExpiry()
    expiryTimer = setInterval(checkExpiry, EXPIRY_CHECK_EVERY)
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
