/**
 * Picks the certificate source for a TLS mode.
 */
import { ERR_CERTIFICATE } from '../errors.js'
import type { TlsConfig } from '../schemas/tls.js'
import { acmeSource } from './acme-source.js'
import { filesSource } from './files-source.js'
import { selfSignedSource } from './self-signed-source.js'
import type { CertificateSource } from './source.js'

/** True for the modes where this process terminates TLS. */
export function terminatesTls (mode: TlsConfig['mode']): boolean {
  return mode === 'self-signed' || mode === 'files' || mode === 'acme'
}

/** The source for the configured mode. @throws when the mode has no certificate (proxy, off). */
export function createSource (config: TlsConfig): CertificateSource {
  switch (config.mode) {
    case 'self-signed': return selfSignedSource(config)
    case 'files': return filesSource(config)
    case 'acme': return acmeSource(config)
    default: throw new ERR_CERTIFICATE(`TLS_MODE=${config.mode} terminates no TLS in this process, so it has no certificate source`)
  }
}
