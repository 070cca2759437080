/**
 * TLS settings after Mozilla's server-side TLS guidelines (version 6):
 * https://wiki.mozilla.org/Security/Server_Side_TLS and https://ssl-config.mozilla.org/
 *
 * Node's own defaults accept TLS 1.2 with CBC suites and with RSA key exchange (no forward secrecy),
 * among others; a profile replaces both the protocol range and the whole TLS 1.2 cipher list, so
 * nothing outside it can be negotiated. The same options are passed at construction
 * (`serverOptions`) and on every `setSecureContext()`, which otherwise falls back to Node's defaults.
 */
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import type { TlsProfile } from '../schemas/tls.ts'
import type { CertificatePair } from './source.ts'

/** TLS 1.3 suites, all AEAD; OpenSSL enables the same three by default. */
export const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const

/** TLS 1.2 suites of the intermediate profile: ECDHE key exchange and AEAD only (no CBC, no RSA kx, no DHE). */
export const INTERMEDIATE_TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305'
] as const

/** Classic key exchange groups, in order of preference: every OpenSSL that Node ships has them. */
export const CLASSIC_GROUPS = 'X25519:prime256v1:secp384r1'
/**
 * The hybrid post-quantum group (X25519 with ML-KEM-768) that Chrome, Firefox and Safari offer
 * first, and OpenSSL 3.5 (Node 24) prefers by default. OpenSSL 3.0 (Node 22) does not know it.
 */
export const HYBRID_GROUP = 'X25519MLKEM768'

let groups: string | undefined

/**
 * Key exchange groups, in order of preference: X25519MLKEM768 first where the OpenSSL in use has
 * it, so that recorded traffic stays safe from a future quantum computer, then the classic ones.
 * Found once: OpenSSL refuses a group list with a name it does not know.
 */
export function ecdhCurves (): string {
  if (groups === undefined) {
    try {
      createSecureContext({ ecdhCurve: `${HYBRID_GROUP}:${CLASSIC_GROUPS}` })
      groups = `${HYBRID_GROUP}:${CLASSIC_GROUPS}`
    } catch {
      groups = CLASSIC_GROUPS
    }
  }
  return groups
}

/** Options a TLS profile contributes to a secure context. */
export type ProfileOptions = Required<Pick<SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers' | 'ecdhCurve' | 'honorCipherOrder'>>

/**
 * The context options of a profile. Mozilla lets the client choose the suite in both profiles: every
 * suite offered is strong, and a phone without AES instructions knows best that ChaCha20 is faster.
 * Server preference would only matter if a weak suite were on the list, and none is.
 */
export function profileOptions (profile: TlsProfile): ProfileOptions {
  if (profile === 'modern') {
    // No TLS 1.2 names at all: Node then leaves the TLS 1.2 list empty, and 1.3 is the only protocol.
    return { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: TLS13_SUITES.join(':'), ecdhCurve: ecdhCurves(), honorCipherOrder: false }
  }
  return {
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: [...TLS13_SUITES, ...INTERMEDIATE_TLS12_SUITES].join(':'),
    ecdhCurve: ecdhCurves(),
    honorCipherOrder: false
  }
}

/**
 * Session context shared by every instance that shares ticket keys. OpenSSL resumes a session only
 * in the context it was made in, and Node's default context is a hash of the process's command
 * line, which differs between instances started differently (`node server.js`, a process manager,
 * a different path): without a fixed value, shared keys would decrypt the ticket and still refuse it.
 */
export const SHARED_SESSION_ID_CONTEXT = 'fastify-secure-https'

/** Options for TLS session resumption. */
export interface SessionResumptionOptions {
  ticketKeys?: Buffer
  sessionIdContext?: string
}

/**
 * Session resumption options for the configured ticket keys (TLS_TICKET_KEYS, newest first). Node
 * holds one 48-byte key set per server, so the newest key is the one used to issue and to accept
 * tickets; older ones cannot be handed to Node (see docs/tls.md for rotation).
 */
export function sessionResumptionOptions (ticketKeys: readonly Buffer[]): SessionResumptionOptions {
  const newest = ticketKeys[0]
  if (newest === undefined) return {}
  return { ticketKeys: newest, sessionIdContext: SHARED_SESSION_ID_CONTEXT }
}

/**
 * The whole secure context for a pair: the profile, resumption and the pair itself. Used at
 * construction (`serverOptions`) and on every reload (`setSecureContext()` builds the context from
 * these options alone: without the profile, Node's defaults would come back).
 */
export function secureContextOptions (profile: TlsProfile, ticketKeys: readonly Buffer[], pair: Pick<CertificatePair, 'key' | 'cert' | 'ca' | 'passphrase'>): SecureContextOptions & SessionResumptionOptions {
  const options: SecureContextOptions & SessionResumptionOptions = { ...profileOptions(profile), ...sessionResumptionOptions(ticketKeys), key: pair.key, cert: pair.cert }
  if (pair.ca !== undefined) options.ca = pair.ca
  if (pair.passphrase !== undefined) options.passphrase = pair.passphrase
  return options
}
