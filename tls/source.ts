/**
 * One abstraction for every certificate origin: a source yields a pair now and may yield a new one
 * later. The `tls` plugin applies each new pair with `server.setSecureContext()`.
 */
import type { TlsMode } from '../schemas/tls.js'
import type { CertificateInfo } from './inspect.js'

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

/** Callbacks a source reports to once started. */
export interface SourceEvents {
  /** A new, validated pair is ready to serve. */
  update (pair: CertificatePair, reason: string): void
  /** A new pair was found but is unusable; the current one keeps serving. */
  error (error: Error): void
}

/** Where certificates come from. */
export interface CertificateSource {
  /** The TLS_MODE this source serves. */
  readonly mode: TlsMode
  /** Loads (or generates) the pair to serve now. Throws when there is none. */
  load (): Promise<CertificatePair>
  /** Starts watching for new pairs (files changed, renewal due). */
  start (events: SourceEvents): void
  /** Stops watching; resolves when every timer and watcher is gone. */
  stop (): Promise<void>
}
