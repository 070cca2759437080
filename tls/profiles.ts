/**
 * TLS settings after Mozilla's server-side TLS guidelines (version 5.7):
 * https://wiki.mozilla.org/Security/Server_Side_TLS
 */
import type { SecureContextOptions } from 'node:tls'
import type { TlsProfile } from '../schemas/tls.js'

/** TLS 1.3 suites, all AEAD; OpenSSL enables the same three by default. */
export const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const

/** TLS 1.2 suites of the intermediate profile: ECDHE key exchange and AEAD only (no CBC, no RSA kx). */
export const INTERMEDIATE_TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305'
] as const

/** Key exchange groups, in order of preference. */
export const ECDH_CURVES = 'X25519:prime256v1:secp384r1'

/** Options a TLS profile contributes to a secure context. */
export type ProfileOptions = Required<Pick<SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers' | 'ecdhCurve' | 'honorCipherOrder'>>

/**
 * The context options of a profile. Mozilla lets the client choose the suite in both profiles: every
 * suite offered is strong, and a phone without AES instructions knows best that ChaCha20 is faster.
 */
export function profileOptions (profile: TlsProfile): ProfileOptions {
  if (profile === 'modern') {
    return { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: TLS13_SUITES.join(':'), ecdhCurve: ECDH_CURVES, honorCipherOrder: false }
  }
  return {
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: [...TLS13_SUITES, ...INTERMEDIATE_TLS12_SUITES].join(':'),
    ecdhCurve: ECDH_CURVES,
    honorCipherOrder: false
  }
}
