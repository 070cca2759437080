/**
 * The `tls` plugin: applies the configured certificates and TLS profile to the server, swaps in new
 * certificates without a restart (`server.setSecureContext()` for the default, the SNI table for the
 * others; connections in flight keep theirs), and reports every certificate's status and expiry.
 *
 * A source with several certificates (files with comma lists, ACME with a certificate per name,
 * on-demand names) is served by SNI: the first certificate is the default, for clients without SNI
 * or asking for a name no certificate covers.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls'
import { channels } from '../diagnostics.ts'
import { ERR_INSTANCE_MISMATCH } from '../errors.ts'
import { parseOptions } from '../schemas/common.ts'
import { certificateFiles, tlsSchema, type TlsConfig, type TlsMode, type TlsOptions, type TlsProfile } from '../schemas/tls.ts'
import { isPartialLoadError, pairDigest } from '../tls/files-source.ts'
import { chainWarnings, uncoveredHosts, type CertificateInfo } from '../tls/inspect.ts'
import { secureContextOptions } from '../tls/profiles.ts'
import { takePreparedSource } from '../server-options.ts'
import { SniRouter } from '../tls/sni.ts'
import type { SelfSignedPair } from '../tls/self-signed-source.ts'
import { isAcmeSource, scaledWarningDays, SELF_SIGNED_RENEW_DAYS, type CertificatePair, type CertificateSource, type NamedCertificate } from '../tls/source.ts'
import { createSource, needsSni, terminatesTls } from '../tls/sources.ts'
import { acmeChallenges } from './acme-challenge.ts'
import { securityEvent } from './events.ts'
import { isTlsServer } from './instance.ts'

/** One certificate served, and the history of its reloads. */
export interface CertificateStatus extends CertificateInfo {
  /** The certificate's name: `default`, or the first name it serves. */
  name: string
  /** The names it is served for by SNI (its own SANs for files). */
  names: string[]
  /** True for the certificate of clients without SNI or asking for an unknown name. */
  default: boolean
  /** Obtained on demand (ACME_ON_DEMAND_ASK), for a name not configured in advance. */
  onDemand: boolean
  /** When this certificate was applied. */
  loadedAt: Date
  /** Last successful reload after start, or null. */
  lastReload: Date | null
  /** Message of the last failed reload, or null once a later one succeeds. */
  lastReloadError: string | null
  /** When the last reload failed, or null once a later one succeeds. */
  lastReloadErrorAt: Date | null
  /** What is wrong with it but does not stop it from serving. */
  warnings: string[]
}

/** What `fastify.tls.status()` reports: the default certificate (top level), every certificate, and the history of reloads. */
export interface TlsStatus extends CertificateInfo {
  mode: TlsMode
  /** Where the certificate comes from: the files, the cache directory, or the ACME directory. */
  source: string
  profile: TlsProfile
  http2: boolean
  /** When the default certificate was applied. */
  loadedAt: Date
  /** Last successful reload of the default certificate after start, or null. */
  lastReload: Date | null
  /** Message of the last failed reload, or null once a later one succeeds. */
  lastReloadError: string | null
  /** When the last reload failed, or null once a later one succeeds. */
  lastReloadErrorAt: Date | null
  /**
   * What is wrong with the default certificate but does not stop it from serving: names in
   * ALLOWED_HOSTS no certificate covers, a chain without its intermediates, an intermediate out of date.
   */
  warnings: string[]
  /** `shared` when TLS_TICKET_KEYS is set (instances resume each other's sessions), else `per-process`. */
  sessionTickets: 'shared' | 'per-process'
  /** Where the certificate being served came from (reused from the cache, issued now...), when the source says. */
  origin: string | null
  /** Every certificate served, the default first. */
  certificates: CertificateStatus[]
  /** Where ACME keeps its state (`file: ...`, `redis: ...`), or null for other modes. */
  storage: string | null
}

/** The `fastify.tls` decorator. */
export interface TlsControl {
  /** The certificates being served and the history of reloads. */
  status (): TlsStatus
  /**
   * Reads the source again and applies the pairs that are valid and new. Rejects (and keeps the
   * current certificate) when the new default pair is unusable.
   */
  reload (): Promise<TlsStatus>
  /**
   * Names allowed on demand so far (ACME_ON_DEMAND_ASK said yes, or a certificate obtained for them
   * is stored): host authorization accepts these besides ALLOWED_HOSTS. Empty without on-demand TLS.
   */
  onDemandNames (): ReadonlySet<string>
  /** Calls `listener` with each name the ask check allows from now on; returns a function that stops it. */
  onNameAllowed (listener: (name: string) => void): () => void
}

declare module 'fastify' {
  interface FastifyInstance {
    /** TLS status and manual reload, from fastify-secure-https. */
    tls: TlsControl
  }
}

const DAY = 86_400_000
const EXPIRY_CHECK_EVERY = 6 * 3600_000
const NO_NAMES: ReadonlySet<string> = new Set()

interface Hooks {
  /** Replaces the source, for tests and for the ACME plugin's temporary certificate. @internal */
  source?: CertificateSource
  /** How often the certificate's expiry is checked, in ms (default 6 hours); tests shorten it. @internal */
  expiryCheckEvery?: number
}

/** One certificate's state in the plugin. */
interface Slot {
  name: string
  /** Names configured for it; empty: its SANs. */
  configured: readonly string[]
  onDemand: boolean
  pair: CertificatePair
  context: SecureContext | null
  loadedAt: Date
  lastReload: Date | null
  lastReloadError: string | null
  lastReloadErrorAt: Date | null
  warnings: string[]
  warned: Set<number>
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

  const server = fastify.server as unknown as {
    setSecureContext (options: SecureContextOptions): void
    getTicketKeys? (): Buffer
    on (event: 'secureConnection', listener: (socket: TLSSocket) => void): void
  }
  // The source serverOptions() loaded for this instance, if any: the certificate is not loaded twice,
  // and the SNI callbacks it installed at construction are this server's.
  const handOver = injected === undefined ? takePreparedSource(config, server.getTicketKeys?.()) : undefined
  const source = injected ?? handOver?.source ?? await createSource(config)
  const router = handOver?.sni ?? (needsSni(config) ? new SniRouter(config.http2) : null)
  if (router !== null && !router.installed && config.mode === 'acme' && (config.acme.challenge === 'tls-alpn-01' || config.acme.onDemand !== undefined)) {
    throw new ERR_INSTANCE_MISMATCH(`${config.acme.challenge === 'tls-alpn-01' ? 'ACME_CHALLENGE=tls-alpn-01' : 'on-demand TLS (ACME_ON_DEMAND_ASK)'} needs TLS callbacks that only the server's construction can set; ` +
      'build the instance with the same config: Fastify({ ...(await serverOptions(config)) })')
  }
  const acmeEvents = config.mode === 'acme' ? acmeChallenges(fastify, source) : null
  // The self-signed source renews at SELF_SIGNED_RENEW_DAYS left; warning before that would be noise.
  const thresholds = [...config.expiryWarningDays]
    .filter((days) => config.mode !== 'self-signed' || days < SELF_SIGNED_RENEW_DAYS)
    .sort((a, b) => a - b)

  const first: CertificatePair = handOver?.pair ?? await source.load()
  const listed = source.certificates?.() ?? []
  const several = router !== null || listed.length > 1
  if (several && router?.installed !== true) {
    // Node's own SNI table (server.addContext) only grows: each reload would add contexts, and a
    // name dropped from a certificate would keep being served the old one.
    await source.stop()
    throw new ERR_INSTANCE_MISMATCH(`${config.mode === 'acme' ? 'TLS_MODE=acme serves a certificate per name' : `TLS_CERT_FILE lists ${Math.max(listed.length, certificateFiles(config).length)} certificates`}, chosen by SNI through a callback that only the server's construction can set, ` +
      'and this instance was built without it; build the instance with the same config: Fastify({ ...(await serverOptions(config)) })')
  }
  const slots = new Map<string, Slot>()
  const defaultName = listed[0]?.name ?? 'default'
  const contexts = new Map<string, SecureContext>()
  /** Set once every certificate of the start is applied: warnings are judged from then on. */
  let started = false

  // ---- Applying certificates -------------------------------------------------------------

  function contextOptions (pair: Pick<CertificatePair, 'key' | 'cert' | 'ca' | 'passphrase'>): SecureContextOptions {
    // setSecureContext() and SNI contexts are built from these options alone: the profile must be
    // passed again, or Node's defaults (CBC suites, RSA key exchange) come back. Without shared
    // keys, the server's own ticket keys are carried over so sessions resume across contexts too.
    const context: SecureContextOptions & { ticketKeys?: Buffer } = secureContextOptions(config.profile, config.ticketKeys, pair)
    if (context.ticketKeys === undefined && typeof server.getTicketKeys === 'function') context.ticketKeys = server.getTicketKeys()
    return context
  }

  /** One secure context per distinct pair (the temporary ACME pair serves many names). */
  function contextFor (pair: CertificatePair): SecureContext {
    const digest = pairDigest(pair)
    let context = contexts.get(digest)
    if (context === undefined) {
      context = createSecureContext(contextOptions(pair))
      contexts.set(digest, context)
    }
    return context
  }

  function namesOf (slot: Slot): readonly string[] {
    return slot.configured.length > 0 ? slot.configured : slot.pair.info.sans
  }

  /** Rebuilds the SNI table from the slots, the default first; drops contexts no slot uses. */
  function publishTable (changed: Slot): void {
    if (!several) return
    // Several certificates need the SNI callback serverOptions installs: checked at start.
    router?.setTable([...slots.values()].filter((slot) => slot.context !== null).map((slot) => ({ names: namesOf(slot), context: slot.context as SecureContext })))
    const used = new Set([...slots.values()].map((slot) => pairDigest(slot.pair)))
    for (const digest of contexts.keys()) if (!used.has(digest)) contexts.delete(digest)
  }

  function warningsFor (slot: Slot): string[] {
    const found = chainWarnings(slot.pair.cert, Date.now(), slot.pair.roots ?? slot.pair.ca)
    // ACME certifies ACME_DOMAINS; the names it leaves out are that plugin's to report.
    if (config.mode !== 'acme' && slot.name === defaultName) {
      const covered = several ? [...slots.values()].flatMap((other) => other.pair.info.sans) : slot.pair.info.sans
      const missing = uncoveredHosts(covered, config.hosts)
      if (missing.length > 0) {
        found.push(`it does not cover ${missing.join(', ')} from ALLOWED_HOSTS, so browsers will refuse those names; get a certificate that lists them, or remove them from ALLOWED_HOSTS`)
      }
    }
    return found
  }

  /** Applies a pair to a slot (created if new). Throws when Node refuses it; the old one stays. */
  function apply (name: string, pair: CertificatePair, configured: readonly string[] = [], onDemand = false): Slot {
    const isDefault = name === defaultName
    if (isDefault) server.setSecureContext(contextOptions(pair))
    const context = several ? contextFor(pair) : null
    const existing = slots.get(name)
    const slot: Slot = existing ?? { name, configured, onDemand, pair, context, loadedAt: new Date(), lastReload: null, lastReloadError: null, lastReloadErrorAt: null, warnings: [], warned: new Set() }
    slot.pair = pair
    slot.context = context
    slot.loadedAt = new Date()
    slot.warned.clear()
    slots.set(name, slot)
    publishTable(slot)
    if (started) {
      refreshWarnings(slot, true)
      // Whether ALLOWED_HOSTS are covered depends on every certificate: the default says so.
      const main = slots.get(defaultName)
      if (main !== undefined && main !== slot) refreshWarnings(main, false)
    }
    return slot
  }

  function refreshWarnings (slot: Slot, log: boolean): void {
    slot.warnings = warningsFor(slot)
    if (!log) return
    for (const warning of slot.warnings) fastify.log.warn({ fingerprint: slot.pair.info.fingerprint, ...(several ? { certificate: slot.name } : {}) }, `TLS certificate${several ? ` ${slot.name}` : ''}: ${warning}`)
  }

  function publishCertificate (action: 'loaded' | 'reloaded' | 'reload-failed', name: string, pair: CertificatePair | null, error?: string): void {
    if (!channels.certificate.hasSubscribers) return
    channels.certificate.publish({
      action,
      name,
      source: config.mode,
      ...(pair === null ? {} : { notAfter: pair.info.notAfter, fingerprint: pair.info.fingerprint }),
      ...(error === undefined ? {} : { error })
    })
  }

  // ---- Expiry ---------------------------------------------------------------------------

  function checkExpiry (slot: Slot): void {
    const { info } = slot.pair
    const daysLeft = (info.notAfter.getTime() - Date.now()) / DAY
    // ACME renews by itself: its thresholds shrink with short lifetimes, so that a 6-day
    // certificate does not warn when issued. Other certificates warn as configured.
    const scaled = config.mode === 'acme' ? scaledWarningDays(thresholds, info, config.acme.renewWhenRemaining) : thresholds
    for (let i = 0; i < scaled.length; i++) {
      if (daysLeft <= (scaled[i] as number)) {
        const threshold = thresholds[i] as number
        if (!slot.warned.has(threshold)) {
          slot.warned.add(threshold)
          securityEvent(fastify.log, 'tls.expiring', { daysLeft: Math.floor(daysLeft), notAfter: info.notAfter.toISOString(), fingerprint: info.fingerprint, mode: config.mode, certificate: slot.name },
            `TLS certificate${several ? ` ${slot.name}` : ''} expires in ${Math.max(0, Math.floor(daysLeft))} days (${info.notAfter.toISOString()})`)
        }
        break
      }
    }
  }

  function checkAllExpiry (): void {
    for (const slot of slots.values()) checkExpiry(slot)
  }

  // ---- Source events ----------------------------------------------------------------------

  function onUpdate (pair: CertificatePair, reason: string, name = defaultName): void {
    const entry = slots.has(name) ? undefined : source.certificates?.().find((candidate) => candidate.name === name)
    let slot: Slot
    try {
      slot = apply(name, pair, entry?.names ?? slots.get(name)?.configured ?? [], entry?.onDemand === true || slots.get(name)?.onDemand === true)
    } catch (error) {
      // Node refused the pair (an option OpenSSL rejects); the previous context is still in place.
      onError(error as Error, name)
      return
    }
    slot.lastReload = slot.loadedAt
    slot.lastReloadError = null
    slot.lastReloadErrorAt = null
    fastify.log.info({ fingerprint: pair.info.fingerprint, notAfter: pair.info.notAfter.toISOString(), reason, ...(several ? { certificate: name } : {}) },
      'TLS certificate reloaded')
    publishCertificate('reloaded', name, pair)
    checkExpiry(slot)
  }

  function onError (error: Error, name = defaultName): void {
    const slot = slots.get(name) ?? slots.get(defaultName)
    if (slot !== undefined) {
      slot.lastReloadError = error.message
      slot.lastReloadErrorAt = new Date()
    }
    securityEvent(fastify.log, 'tls.reload-failed', { reason: error.message, mode: config.mode, servingFingerprint: slot?.pair.info.fingerprint, ...(several ? { certificate: name } : {}) },
      `TLS certificate${several ? ` ${name}` : ''} reload failed, still serving the previous certificate: ${error.message}`)
    publishCertificate('reload-failed', name, null, error.message)
  }

  /** A slot for an on-demand certificate the source just obtained, or found stored. */
  function onDemandSlot (entry: NamedCertificate): SecureContext {
    const known = slots.get(entry.name)
    if (known !== undefined && pairDigest(known.pair) === pairDigest(entry.pair) && known.context !== null) return known.context
    const slot = apply(entry.name, entry.pair, entry.names, true)
    publishCertificate('loaded', entry.name, entry.pair)
    return slot.context as SecureContext
  }

  // ---- Start ------------------------------------------------------------------------------

  if (listed.length === 0) {
    apply(defaultName, first)
  } else {
    for (const entry of listed) apply(entry.name, entry.name === defaultName ? first : entry.pair, entry.names, entry.onDemand === true)
  }
  started = true
  for (const slot of slots.values()) {
    refreshWarnings(slot, true)
    publishCertificate('loaded', slot.name, slot.pair)
  }
  const caReplaced = (first as SelfSignedPair).caReplaced
  if (caReplaced !== undefined) {
    fastify.log.warn({ origin: first.origin }, `the development CA was replaced: ${caReplaced}; browsers do not trust the new one yet: run npx fastify-secure-https trust (it also takes the replaced one out of the stores)`)
  }

  if (router !== null) {
    if (typeof source.onDemand === 'function' && router.installed) {
      const obtain = source.onDemand.bind(source)
      router.onMiss = async (name) => {
        const entry = await obtain(name)
        return entry === null || entry === undefined ? entry : onDemandSlot(entry)
      }
    }
    if (config.mode === 'acme' && config.acme.challenge === 'tls-alpn-01' && typeof source.alpnChallenge === 'function') {
      const challenge = source.alpnChallenge.bind(source)
      router.onAlpn = async (name) => {
        const pem = await challenge(name)
        // The challenge certificate alone, with the profile: nothing else is negotiated on it.
        return pem === null ? null : createSecureContext({ ...secureContextOptions(config.profile, [], pem) })
      }
      server.on('secureConnection', SniRouter.endValidation)
    }
  }

  const sourceDescription = config.mode === 'files'
    ? `files: ${[config.certFile, config.keyFile, config.caFile].filter((p) => p !== undefined).join(', ')}`
    : config.mode === 'acme' ? `acme: ${config.acme.directory}` : `${config.mode}: ${config.dir}`
  // Manual reloads and source updates are applied one at a time, in order.
  let reloading: Promise<unknown> = Promise.resolve()
  const allowedListeners = new Set<(name: string) => void>()
  if (acmeEvents !== null) {
    acmeEvents.onAllowed = (name) => {
      for (const listener of allowedListeners) {
        try {
          listener(name)
        } catch (error) {
          fastify.log.error({ err: error }, 'a listener of fastify.tls.onNameAllowed failed')
        }
      }
    }
  }

  function slotStatus (slot: Slot): CertificateStatus {
    const { info } = slot.pair
    return {
      name: slot.name,
      names: [...namesOf(slot)],
      default: slot.name === defaultName,
      onDemand: slot.onDemand,
      ...info,
      sans: info.sans.slice(),
      loadedAt: slot.loadedAt,
      lastReload: slot.lastReload,
      lastReloadError: slot.lastReloadError,
      lastReloadErrorAt: slot.lastReloadErrorAt,
      warnings: slot.warnings.slice()
    }
  }

  const control: TlsControl = {
    status () {
      const main = slots.get(defaultName) as Slot
      const { info } = main.pair
      return {
        mode: config.mode,
        source: injected === undefined ? sourceDescription : `${source.mode}: provided source`,
        profile: config.profile,
        http2: config.http2,
        ...info,
        sans: info.sans.slice(),
        loadedAt: main.loadedAt,
        lastReload: main.lastReload,
        lastReloadError: main.lastReloadError,
        lastReloadErrorAt: main.lastReloadErrorAt,
        warnings: main.warnings.slice(),
        sessionTickets: config.ticketKeys.length === 0 ? 'per-process' : 'shared',
        origin: main.pair.origin ?? null,
        certificates: [...slots.values()].map(slotStatus),
        storage: isAcmeSource(source) ? source.storageDescription() : null
      }
    },
    reload () {
      const run = reloading.then(async () => {
        let pair: CertificatePair | undefined
        let failure: Error | undefined
        try {
          pair = await source.load()
        } catch (error) {
          if (!isPartialLoadError(error)) {
            onError(error as Error)
            throw error
          }
          // Some of several pairs are broken: each is reported under its own name, and the others,
          // which the source now counts as served, are applied below all the same.
          for (const { name, error: why } of error.failures) onError(why, name)
          failure = error
        }
        const entries = source.certificates?.() ?? []
        const failedNames = new Set(isPartialLoadError(failure) ? failure.failures.map(({ name }) => name) : [])
        pair ??= failedNames.has(defaultName) ? undefined : entries.find((entry) => entry.name === defaultName)?.pair
        const main = slots.get(defaultName) as Slot
        if (pair !== undefined && pairDigest(pair) !== pairDigest(main.pair)) {
          onUpdate(pair, 'manual reload')
          if (main.pair !== pair) failure ??= new Error(main.lastReloadError ?? 'the new certificate could not be applied')
        }
        for (const entry of entries) {
          const slot = slots.get(entry.name)
          if (entry.name !== defaultName && !failedNames.has(entry.name) && (slot === undefined || pairDigest(slot.pair) !== pairDigest(entry.pair))) onUpdate(entry.pair, 'manual reload', entry.name)
        }
        if (failure !== undefined) throw failure
        return control.status()
      })
      reloading = run.catch(() => {})
      return run
    },
    onDemandNames () {
      return isAcmeSource(source) ? source.onDemandNames() : NO_NAMES
    },
    onNameAllowed (listener) {
      allowedListeners.add(listener)
      return () => { allowedListeners.delete(listener) }
    }
  }
  fastify.decorate('tls', control)

  let expiryTimer: NodeJS.Timeout | undefined
  fastify.addHook('onReady', async () => {
    source.start({ update: onUpdate, error: onError })
    checkAllExpiry()
    expiryTimer = setInterval(checkAllExpiry, expiryCheckEvery)
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
