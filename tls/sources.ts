/**
 * Picks the certificate source for a TLS mode.
 */
import { ERR_CERTIFICATE } from '../errors.ts'
import { certificateFiles, type TlsConfig } from '../schemas/tls.ts'
import { filesSource } from './files-source.ts'
import type { CertificateSource } from './source.ts'

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

/**
 * The source for the configured mode. The development certificate and ACME code (key generation,
 * the development CA, the ACME client, storage, on-demand TLS) load only for their mode: an app
 * serving certificate files never loads them. @throws when the mode has no certificate (proxy, off).
 */
export async function createSource (config: TlsConfig): Promise<CertificateSource> {
  switch (config.mode) {
    case 'self-signed': return (await import('./self-signed-source.ts')).selfSignedSource(config)
    case 'files': return filesSource(config)
    case 'acme': return (await import('./acme-source.ts')).acmeSource(config)
    default: throw new ERR_CERTIFICATE(`TLS_MODE=${config.mode} terminates no TLS in this process, so it has no certificate source`)
  }
}
