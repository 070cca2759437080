/**
 * Picks the certificate source for a TLS mode.
 */
import { ERR_CERTIFICATE } from '../errors.js'
import { certificateFiles, type TlsConfig } from '../schemas/tls.js'
import { acmeSource } from './acme-source.js'
import { filesSource } from './files-source.js'
import { selfSignedSource } from './self-signed-source.js'
import type { CertificateSource } from './source.js'

/** True for the modes where this process terminates TLS. */
export function terminatesTls (mode: TlsConfig['mode']): boolean {
  return mode === 'self-signed' || mode === 'files' || mode === 'acme'
}

/**
 * True when the server needs the SNI callbacks (set at construction): ACME (a certificate per name,
 * on-demand names, TLS-ALPN-01) and files with several pairs.
 */
export function needsSni (config: TlsConfig): boolean {
  return config.mode === 'acme' || (config.mode === 'files' && certificateFiles(config).length > 1)
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
