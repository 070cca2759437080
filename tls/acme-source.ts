/**
 * TLS_MODE=acme: certificates from an ACME CA (Let's Encrypt).
 */
import { ERR_CERTIFICATE } from '../errors.js'
import type { TlsConfig } from '../schemas/tls.js'
import type { CertificateSource } from './source.js'

/** The ACME certificate source. */
export function acmeSource (_config: TlsConfig): CertificateSource {
  throw new ERR_CERTIFICATE('TLS_MODE=acme is not available in this version; use files with certbot')
}
