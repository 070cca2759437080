/**
 * What Fastify needs at construction: `https` (or `http2`) and `trustProxy` cannot be changed by a
 * plugin later, so they come from the same config, here.
 */
import { randomBytes } from 'node:crypto'
import type { ServerOptions as HttpsServerOptions } from 'node:https'
import { resolveConfig, type SecureHttpsConfig, type SecureHttpsOptions } from './schemas/config.ts'
import { trustProxyValue } from './schemas/proxy-trust.ts'
import type { TlsConfig } from './schemas/tls.ts'
import { secureContextOptions } from './tls/profiles.ts'
import type { CertificatePair, CertificateSource } from './tls/source.ts'
import { SniRouter } from './tls/sni.ts'
import { createSource, needsSni, terminatesTls } from './tls/sources.ts'

/** What `serverOptions` loaded for one server. */
interface Prepared {
  source: CertificateSource
  pair: CertificatePair
  sni?: SniRouter
  /** The ticket keys the server was built with: what `server.getTicketKeys()` tells the plugin. */
  ticketKeys: Buffer
}

/**
 * The sources and pairs `serverOptions` loaded, by TLS config, so that the `tls` plugin registered
 * with the same config carries on with them instead of loading the certificate again (for ACME, a
 * second temporary key pair), and fills the SNI table of the callback installed in its own server.
 * Each entry is taken once, by the server it was built into, recognized by its ticket keys (see
 * `httpsOptions`): with two calls for one config, taking the oldest would hand one server the SNI
 * table of the other. Bounded: a config prepared and never registered does not pile up.
 */
const prepared = new Map<string, Prepared[]>()
const PREPARED_PER_CONFIG = 8

/**
 * Takes what `serverOptions` prepared for the server whose ticket keys are `serverTicketKeys`
 * (`server.getTicketKeys()`), built with this TLS config; undefined when that server was not built
 * from it. @internal
 */
export function takePreparedSource (tls: TlsConfig, serverTicketKeys: Buffer | undefined): Omit<Prepared, 'ticketKeys'> | undefined {
  if (serverTicketKeys === undefined) return undefined
  const key = JSON.stringify(tls)
  const list = prepared.get(key)
  const index = list?.findIndex((entry) => entry.ticketKeys.equals(serverTicketKeys)) ?? -1
  if (list === undefined || index < 0) return undefined
  const [found] = list.splice(index, 1)
  if (list.length === 0) prepared.delete(key)
  return found
}

/**
 * Options to spread into `Fastify()`. The type is that of an HTTPS server; with `http2: true` in the
 * config the server is an HTTP/2 secure server with HTTP/1.1 fallback, whose request and reply
 * objects Fastify gives the same interface.
 */
export interface FastifyServerOptionsFromConfig {
  https: HttpsServerOptions | null
  trustProxy: boolean | string[]
  http2?: false
  /** Whole-request timeout, ms (the `listener` section; absent when it is false). */
  requestTimeout?: number
}

/** Pre-computed `https` options of a resolved config, including the certificate. @internal */
export async function httpsOptions (config: SecureHttpsConfig): Promise<HttpsServerOptions | null> {
  const tls = config.tls
  if (tls === false || !terminatesTls(tls.mode)) return null
  const source = await createSource(tls)
  const pair = await source.load()
  // Tickets are on by default in Node; shared keys (TLS_TICKET_KEYS) let instances resume each other's.
  const options: HttpsServerOptions = secureContextOptions(tls.profile, tls.ticketKeys, pair)
  // Several certificates chosen by SNI, on-demand names, TLS-ALPN-01: callbacks that only
  // construction can set; the tls plugin fills their table.
  let sni: SniRouter | undefined
  if (needsSni(tls)) {
    sni = new SniRouter(tls.http2)
    options.SNICallback = sni.SNICallback
    if (tls.mode === 'acme' && tls.acme.challenge === 'tls-alpn-01') options.ALPNCallback = sni.ALPNCallback
    sni.installed = true
  }
  // Fresh random ticket keys for each server, as Node would make, tell the tls plugin which server
  // it is on (server.getTicketKeys() is public; the SNI callback is not readable). Shared keys
  // (TLS_TICKET_KEYS) are installed by the plugin's first setSecureContext(), before it listens.
  const ticketKeys = randomBytes(48)
  options.ticketKeys = ticketKeys
  const key = JSON.stringify(tls)
  const list = prepared.get(key) ?? []
  if (list.length >= PREPARED_PER_CONFIG) list.shift()
  list.push({ source, pair, ticketKeys, ...(sni === undefined ? {} : { sni }) })
  prepared.set(key, list)
  return options
}

/**
 * Builds the construction options for `Fastify()` from the config (resolved or not):
 * `Fastify({ logger: true, ...(await serverOptions(config)) })`.
 * Loads or generates the certificate, so the server starts with the right one.
 */
export async function serverOptions (config: SecureHttpsConfig | SecureHttpsOptions): Promise<FastifyServerOptionsFromConfig> {
  const resolved = resolveConfig(config)
  const https = await httpsOptions(resolved)
  const trustProxy = resolved.proxyTrust === false ? false : trustProxyValue(resolved.proxyTrust.trust)
  const listener = resolved.listener
  // Node's defaults let a client hold a connection for two minutes without finishing a handshake,
  // and Fastify's let a request trickle in forever. connectionTimeout is not Node's socket timer,
  // which costs every request, but the aggregate's sweep (plugins/idle-sweep.ts).
  const timeouts = listener === false ? {} : { requestTimeout: listener.requestTimeout }
  const limits = listener === false ? {} : { handshakeTimeout: listener.handshakeTimeout, headersTimeout: listener.headersTimeout }
  if (https !== null && resolved.tls !== false && resolved.tls.http2) {
    // allowHTTP1: ALPN offers h2 and http/1.1, and clients without ALPN get HTTP/1.1.
    // Typed as HTTPS on purpose: see FastifyServerOptionsFromConfig.
    const http2 = { ...https, ...limits, allowHTTP1: true }
    return { http2: true, https: http2, trustProxy, ...timeouts } as unknown as FastifyServerOptionsFromConfig
  }
  return { https: https === null ? null : { ...https, ...limits }, trustProxy, ...timeouts }
}
