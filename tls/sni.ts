/**
 * Chooses the certificate of each TLS handshake by the name the client asks for (SNI), and answers
 * TLS-ALPN-01 validation handshakes (RFC 8737).
 *
 * The table maps names to secure contexts built once per certificate; a handshake costs one or two
 * Map lookups. A name no certificate covers gets the default context, or, with on-demand TLS, goes
 * to `onMiss` (asynchronous: Node lets SNICallback answer later), which may refuse the handshake.
 *
 * TLS-ALPN-01: the CA connects with ALPN `acme-tls/1` and the name being validated as SNI, and
 * expects a self-signed certificate carrying the key authorization. The ALPN callback sees the
 * client's protocols; in TLS 1.3 OpenSSL runs it before choosing the certificate (the SNI callback),
 * so the SNI callback knows that this handshake is a validation and answers with the challenge
 * certificate. CAs validate over TLS 1.3 (Let's Encrypt's and pebble's validators do); over TLS 1.2
 * the certificate is chosen before ALPN, and such a handshake is refused rather than answered with
 * the wrong certificate. Both callbacks are called by Node with the handshake's socket as `this`;
 * the two are matched through it.
 *
 * Both callbacks are server options, fixed when the server is constructed: `serverOptions(config)`
 * installs them. Knows nothing of Fastify.
 */
import type { SecureContext, TLSSocket } from 'node:tls'

/** The ALPN protocol of TLS-ALPN-01 validation handshakes. */
export const ACME_TLS_ALPN = 'acme-tls/1'

type SniCallback = (this: unknown, servername: string, cb: (error: Error | null, context?: SecureContext) => void) => void
type AlpnCallback = (this: unknown, info: { servername: string, protocols: string[] }) => string | undefined

/** One certificate in the table. */
export interface SniEntry {
  /** Names it is served for (`*.example.com` covers one label below example.com). */
  names: readonly string[]
  context: SecureContext
}

/** Lower case, without a trailing dot: how names are compared. */
export function normalizeServername (servername: string): string {
  const lower = servername.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

/** The SNI table and callbacks of one server. */
export class SniRouter {
  /** Set by `serverOptions` once the callbacks are in the server's options. */
  installed = false
  /** Called for a name no certificate covers; resolve null to refuse the handshake, undefined for the default. */
  onMiss: ((name: string) => Promise<SecureContext | null | undefined>) | null = null
  /** The TLS-ALPN-01 challenge context for a name, or null. */
  onAlpn: ((name: string) => Promise<SecureContext | null>) | null = null
  /** How many handshakes asked for a name no certificate covers (for status). */
  misses = 0

  private exact = new Map<string, SecureContext>()
  private wildcards = new Map<string, SecureContext>()
  private readonly validations = new WeakSet<object>()
  private readonly named = new WeakSet<object>()
  private readonly protocols: readonly string[]

  /** `http2`: the server speaks h2 and http/1.1 (else http/1.1 only), as Node would negotiate them. */
  constructor (http2: boolean) {
    this.protocols = http2 ? ['h2', 'http/1.1'] : ['http/1.1']
  }

  /** Replaces the table; the first entry covering a name wins. */
  setTable (entries: readonly SniEntry[]): void {
    const exact = new Map<string, SecureContext>()
    const wildcards = new Map<string, SecureContext>()
    for (const entry of entries) {
      for (const raw of entry.names) {
        const name = normalizeServername(raw)
        if (name.startsWith('*.')) {
          if (!wildcards.has(name.slice(2))) wildcards.set(name.slice(2), entry.context)
        } else if (!exact.has(name)) {
          exact.set(name, entry.context)
        }
      }
    }
    this.exact = exact
    this.wildcards = wildcards
  }

  /** The context for a (normalized) name, or undefined. */
  lookup (name: string): SecureContext | undefined {
    const found = this.exact.get(name)
    if (found !== undefined) return found
    const dot = name.indexOf('.')
    return dot > 0 ? this.wildcards.get(name.slice(dot + 1)) : undefined
  }

  /** Node's `SNICallback` server option. */
  readonly SNICallback: SniCallback = (() => {
    const router = this
    return function sniCallback (this: unknown, servername, cb) {
      const socket = this
      const name = normalizeServername(servername)
      if (typeof socket === 'object' && socket !== null) {
        router.named.add(socket)
        if (router.validations.has(socket)) {
          router.validation(name, cb)
          return
        }
      }
      const context = router.lookup(name)
      if (context !== undefined || router.onMiss === null) {
        if (context === undefined) router.misses++
        cb(null, context)
        return
      }
      router.misses++
      router.onMiss(name).then((found) => {
        if (found === null) cb(new Error(`no certificate for ${name.slice(0, 253)}`))
        else cb(null, found ?? undefined)
      }, (error: unknown) => cb(error as Error))
    }
  })()

  /** Node's `ALPNCallback` server option: the protocols Node would choose, plus `acme-tls/1` for validations. */
  readonly ALPNCallback: AlpnCallback = (() => {
    const router = this
    return function alpnCallback (this: unknown, { protocols }) {
      const socket = this
      if (router.onAlpn !== null && protocols.includes(ACME_TLS_ALPN) && typeof socket === 'object' && socket !== null) {
        // TLS 1.2: the certificate was already chosen; refusing beats answering with the wrong one.
        if (router.named.has(socket)) return undefined
        router.validations.add(socket)
        return ACME_TLS_ALPN
      }
      for (const protocol of router.protocols) {
        if (protocols.includes(protocol)) return protocol
      }
      return undefined
    }
  })()

  private validation (name: string, cb: (error: Error | null, context?: SecureContext) => void): void {
    if (this.onAlpn === null) {
      cb(new Error('TLS-ALPN-01 is not configured'))
      return
    }
    this.onAlpn(name).then((context) => {
      if (context === null) cb(new Error(`no TLS-ALPN-01 challenge pending for ${name.slice(0, 253)}`))
      else cb(null, context)
    }, (error: unknown) => cb(error as Error))
  }

  /** Ends a validation connection once its handshake is done (RFC 8737: nothing follows it). */
  static endValidation (socket: TLSSocket): void {
    if (socket.alpnProtocol === ACME_TLS_ALPN) socket.destroy()
  }
}
