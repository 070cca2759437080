/**
 * When to renew an ACME certificate: at a fraction of its lifetime (two thirds by default, as
 * certmagic and Let's Encrypt recommend), a little earlier by a random jitter so that a fleet and
 * its many certificates do not all renew in the same second, or inside the window the CA suggests
 * through ACME Renewal Information (ARI, RFC 9773) when its directory offers it.
 *
 * Pure functions: no I/O, no Fastify. Everything that parses what a CA sent is strict and linear in
 * its length.
 */
import { X509Certificate } from 'node:crypto'
import type { CertificateInfo } from './inspect.ts'
import { authorityKeyId } from './x509.ts'

/**
 * When a certificate with this validity is due for renewal: when `renewWhenRemaining` of its
 * lifetime is left, minus up to `jitter` of its lifetime (`random` in [0, 1) picks how much).
 */
export function renewalTime (info: Pick<CertificateInfo, 'notBefore' | 'notAfter'>, renewWhenRemaining: number, jitter = 0, random = 0): Date {
  const end = info.notAfter.getTime()
  const lifetime = end - info.notBefore.getTime()
  return new Date(end - lifetime * renewWhenRemaining - lifetime * jitter * Math.min(Math.max(random, 0), 1))
}

/** A renewal window suggested by the CA (RFC 9773 section 4.2). */
export interface RenewalWindow {
  start: Date
  end: Date
}

/** What the CA said about a certificate's renewal. */
export interface RenewalInfo {
  window: RenewalWindow
  /** Seconds until the CA wants to be asked again (Retry-After), or null. */
  retryAfter: number | null
  /** A page explaining why the window moved (an incident, a revocation), when given. */
  explanationUrl: string | null
}

/** An RFC 3339 timestamp, strictly: what ARI's `suggestedWindow` holds. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/

function timestamp (value: unknown): Date | null {
  if (typeof value !== 'string' || value.length > 40 || !RFC3339.test(value)) return null
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? null : date
}

/**
 * The window of an ARI response body, or null when the body is not a valid RenewalInfo object
 * (missing or malformed timestamps, or an end that is not after the start). Clients must ignore
 * an invalid window (RFC 9773 section 4.2).
 */
export function parseRenewalInfo (body: unknown): { window: RenewalWindow, explanationUrl: string | null } | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return null
  const record = body as Record<string, unknown>
  const suggested = record.suggestedWindow
  if (suggested === null || typeof suggested !== 'object' || Array.isArray(suggested)) return null
  const start = timestamp((suggested as Record<string, unknown>).start)
  const end = timestamp((suggested as Record<string, unknown>).end)
  if (start === null || end === null || end.getTime() <= start.getTime()) return null
  const explanation = record.explanationURL
  let explanationUrl: string | null = null
  if (typeof explanation === 'string' && explanation.length <= 2048 && /^https:\/\/\S+$/.test(explanation)) explanationUrl = explanation
  return { window: { start, end }, explanationUrl }
}

/**
 * A time chosen uniformly in the window (RFC 9773 section 4.2: "select a uniform random time
 * within the suggested window").
 */
export function timeInWindow (window: RenewalWindow, random: number): Date {
  const start = window.start.getTime()
  return new Date(start + (window.end.getTime() - start) * Math.min(Math.max(random, 0), 0.999999))
}

/**
 * The ARI certificate identifier (RFC 9773 section 4.1): base64url of the authority key
 * identifier's keyIdentifier, a dot, and base64url of the serial number's DER content octets.
 * Null when the certificate has no authority key identifier.
 */
export function ariCertId (certPem: string): string | null {
  let keyId: Buffer | null
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certPem)
    keyId = authorityKeyId(cert.raw)
  } catch {
    return null
  }
  if (keyId === null) return null
  let serialHex = cert.serialNumber
  if (serialHex.length % 2 === 1) serialHex = `0${serialHex}`
  let serial = Buffer.from(serialHex, 'hex')
  // DER encodes a positive INTEGER whose first bit is set with a leading zero octet.
  if (serial.length > 0 && ((serial[0] as number) & 0x80) !== 0) serial = Buffer.concat([Buffer.from([0]), serial])
  return `${keyId.toString('base64url')}.${serial.toString('base64url')}`
}
