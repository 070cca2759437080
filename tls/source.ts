/**
 * One abstraction for every certificate origin: a source yields a pair now and may yield a new one
 * later. The `tls` plugin applies each new pair with `server.setSecureContext()` (the default) or in
 * its SNI table (the others).
 *
 * A source may serve several certificates, each chosen by the name the client asks for (SNI): the
 * first is the default, for clients without SNI or asking for a name no certificate covers.
 */
import type { TlsMode } from '../schemas/tls.ts'
import type { AcmeCertificateSource } from './acme-source.ts'
import type { CertificateInfo } from './inspect.ts'

/** A key and certificate chain ready for a secure context. */
export interface CertificatePair {
  key: string
  /** Leaf first, then intermediates. */
  cert: string
  /** Extra CA certificates (client-certificate verification); rarely needed. */
  ca?: string
  passphrase?: string
  /** Facts about the leaf. */
  info: CertificateInfo
  /**
   * Self-signed roots known to have issued the chain's last certificate (the development CA,
   * TLS_CA_FILE): a leaf issued straight by one of them is a complete chain.
   */
  roots?: string
  /** Where this pair came from, for people: `reused from ...`, `issued now by ...`. */
  origin?: string
}

/** One certificate of a source that serves several. */
export interface NamedCertificate {
  /** Stable name: the first name it is ordered for (ACME), or `default` and the certificate file (files). */
  name: string
  /** Names it is served for by SNI (wildcards as `*.example.com`); the certificate's own SANs when empty. */
  names: readonly string[]
  pair: CertificatePair
  /** Obtained on demand, for a name not configured in advance. */
  onDemand?: boolean
}

/** Callbacks a source reports to once started. */
export interface SourceEvents {
  /**
   * A new, validated pair is ready to serve. `name` says which certificate (see
   * `certificates()`); without it, the default.
   */
  update (pair: CertificatePair, reason: string, name?: string): void
  /** A new pair was found but is unusable; the current one keeps serving. */
  error (error: Error, name?: string): void
}

/** Where certificates come from. */
export interface CertificateSource {
  /** The TLS_MODE this source serves. */
  readonly mode: TlsMode
  /** Loads (or generates) the pair to serve now, the default one. Throws when there is none. */
  load (): Promise<CertificatePair>
  /**
   * Every certificate after `load()`, the default first, for sources that serve several by SNI.
   * Absent (or one entry) for sources with a single certificate.
   */
  certificates? (): NamedCertificate[]
  /**
   * A certificate for an SNI name no certificate covers, obtained now (on-demand TLS): resolves
   * with it, null to refuse the handshake, or undefined to serve the default certificate (a name
   * that is not on-demand material, such as localhost). Absent when the source has no such names.
   */
  onDemand? (servername: string): Promise<NamedCertificate | null | undefined>
  /** The pending TLS-ALPN-01 challenge certificate for a name (RFC 8737), or null. */
  alpnChallenge? (servername: string): Promise<{ key: string, cert: string } | null>
  /** Starts watching for new pairs (files changed, renewal due). */
  start (events: SourceEvents): void
  /** Stops watching; resolves when every timer and watcher is gone. */
  stop (): Promise<void>
}

/**
 * True when the source is the ACME source (the `tls` plugin's source can be injected). Here, not in
 * acme-source.ts, so that checking loads no ACME code.
 */
export function isAcmeSource (source: CertificateSource): source is AcmeCertificateSource {
  return source.mode === 'acme' && typeof (source as Partial<AcmeCertificateSource>).challenge === 'function'
}

/** A development (self-signed) certificate with fewer days left is replaced. */
export const SELF_SIGNED_RENEW_DAYS = 30

/**
 * Expiry warning thresholds (days) for an ACME certificate, which the suite renews itself: a warning
 * must mean that renewal is failing, so no threshold lies before the renewal point (when
 * `renewWhenRemaining` of the lifetime is left). For a 90-day certificate renewed with 30 days left,
 * the thresholds stay as configured (30 and 7); shorter lifetimes scale them down in proportion, so
 * that Let's Encrypt's 6-day certificates warn at 2 days and 11 hours left, not on the day they are
 * issued.
 */
export function scaledWarningDays (thresholds: readonly number[], info: Pick<CertificateInfo, 'notBefore' | 'notAfter'>, renewWhenRemaining: number): number[] {
  const renewalPoint = (info.notAfter.getTime() - info.notBefore.getTime()) * renewWhenRemaining / 86_400_000
  const largest = Math.max(0, ...thresholds)
  const scale = largest <= 0 || renewalPoint <= 0 ? 1 : Math.min(1, renewalPoint / largest)
  return thresholds.map((days) => days * scale)
}
