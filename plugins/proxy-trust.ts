/**
 * The `proxyTrust` plugin: which peers may say that a request arrived over HTTPS, from which client,
 * for which host. Trust is by the immediate peer's address only: Fastify's `trustProxy` is built from
 * the same list (`serverOptions`), and this plugin checks the instance agrees, adds `request.secure`
 * (which also understands RFC 7239 Forwarded when asked to), and logs forwarding headers sent by
 * peers that are not trusted, since those are either a misconfiguration or an attack.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import proxyAddr from 'proxy-addr'
import { ERR_INSTANCE_MISMATCH } from '../errors.js'
import { isProductionEnv, parseOptions } from '../schemas/common.js'
import { expandPresets, proxyTrustSchema, trustProxyValue, type ProxyTrustOptions } from '../schemas/proxy-trust.js'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * True when the request arrived over TLS: on this socket, or at a trusted proxy that says so in
     * X-Forwarded-Proto (or Forwarded, with `forwarded: true`). False when the two headers disagree,
     * and whatever the headers say when the peer is not a trusted proxy.
     * From fastify-secure-https's proxyTrust plugin.
     */
    secure: boolean
    /**
     * The RFC 7239 Forwarded element added by the trusted proxy in front of the app (its `for`,
     * `proto`, `host` and `by`), or null: when `forwarded` is off, the peer is not trusted, or the
     * header is missing or malformed. From fastify-secure-https's proxyTrust plugin.
     */
    forwarded: ForwardedElement | null
  }
}

/** One element of an RFC 7239 Forwarded header; `proto` is lower-cased, quotes are removed. */
export interface ForwardedElement {
  for?: string
  proto?: string
  host?: string
  by?: string
}

const FORWARDED_KEYS = new Set(['for', 'proto', 'host', 'by'])

/**
 * Parses the last element of a Forwarded header: the one added by the nearest proxy, the only one
 * that proxy vouches for (the others were written by whoever came before it, the client included).
 * Several Forwarded header lines arrive joined by commas, so the last line's last element wins.
 * Returns null for an element that does not parse, or that repeats a parameter (RFC 7239 section 4).
 */
export function lastForwardedElement (header: string): ForwardedElement | null {
  let end = header.length
  let inQuotes = false
  let start = 0
  for (let i = header.length - 1; i >= 0; i--) {
    const c = header.charCodeAt(i)
    if (c === 34 /* " */ && header.charCodeAt(i - 1) !== 92 /* \ */) inQuotes = !inQuotes
    else if (c === 44 /* , */ && !inQuotes) {
      if (header.slice(i + 1, end).trim() === '') { end = i; continue }
      start = i + 1
      break
    }
  }
  const element: ForwardedElement = {}
  const text = header.slice(start, end)
  const pairs = text.match(/[^;"]+(?:"(?:[^"\\]|\\.)*"[^;"]*)*/g) ?? []
  const seen = new Set<string>()
  for (const pair of pairs) {
    if (pair.trim() === '') continue
    const eq = pair.indexOf('=')
    if (eq === -1) return null
    const key = pair.slice(0, eq).trim().toLowerCase()
    if (seen.has(key)) return null
    seen.add(key)
    let value = pair.slice(eq + 1).trim()
    if (value.startsWith('"')) {
      if (!value.endsWith('"') || value.length < 2) return null
      value = value.slice(1, -1).replace(/\\(.)/g, '$1')
    }
    if (FORWARDED_KEYS.has(key)) element[key as keyof ForwardedElement] = key === 'proto' ? value.toLowerCase() : value
  }
  return seen.size === 0 ? null : element
}

/**
 * The last entry of a comma-separated header value, as Fastify's `request.protocol` and
 * `request.host` read X-Forwarded-Proto and X-Forwarded-Host: a proxy that appends adds its own
 * value last, and repeated header lines arrive joined by commas. @internal
 */
export function lastEntry (value: string): string {
  const comma = value.lastIndexOf(',')
  return (comma === -1 ? value : value.slice(comma + 1)).trim().toLowerCase()
}

/** A trustProxy value in a comparable form: presets expanded, sorted. @internal */
export function describeTrust (value: unknown): string {
  if (value === undefined || value === null || value === false) return 'false'
  if (value === true) return 'true'
  if (typeof value === 'number') return `the hop count ${value}`
  if (typeof value === 'function') return 'a function'
  const list = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value.map(String) : []
  const entries = expandPresets(list.map((entry) => entry.trim().toLowerCase()).filter((entry) => entry !== ''))
  return entries.length === 0 ? 'false' : [...new Set(entries)].sort().join(',')
}

const FORWARDING_HEADERS = ['x-forwarded-proto', 'x-forwarded-for', 'x-forwarded-host', 'forwarded'] as const

const kSecure = Symbol('fastify-secure-https.secure')
const kForwarded = Symbol('fastify-secure-https.forwarded')
interface Memo { [kSecure]: boolean | null, [kForwarded]: ForwardedElement | null }

/** Most peer addresses whose trust is remembered; a proxy is one or a few addresses. */
const TRUST_CACHE_SIZE = 1024

/**
 * The trust test for one address. proxy-addr parses the address on every call (microseconds);
 * the few addresses a proxy connects from are remembered, and the memory is bounded so that a
 * stream of clients from new addresses cannot grow it. @internal
 */
export function compileTrust (trust: boolean | string[]): (address: string) => boolean {
  if (trust === true) return () => true
  if (trust === false) return () => false
  const compiled = proxyAddr.compile(trust)
  const cache = new Map<string, boolean>()
  return (address) => {
    let result = cache.get(address)
    if (result === undefined) {
      result = compiled(address, 0)
      if (cache.size >= TRUST_CACHE_SIZE) cache.clear()
      cache.set(address, result)
    }
    return result
  }
}

const proxyTrustPlugin: FastifyPluginAsync<ProxyTrustOptions> = async function proxyTrustPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(proxyTrustSchema, { production: isProductionEnv(process.env.NODE_ENV), ...options }, 'proxyTrust')
  const trustValue = trustProxyValue(config.trust)

  if (config.trust === true) {
    fastify.log.warn('TRUST_PROXY=true trusts every peer: any client can claim HTTPS or another IP. Development only; list the proxies\' addresses in production')
  }

  const trusted = compileTrust(trustValue)
  const useForwarded = config.forwarded

  // Fastify fixes trustProxy at construction and keeps it private, so the instance's trust is
  // checked against ours where it shows: the first request with forwarding headers from each peer
  // address. Fastify's request.ips and request.protocol must say what our trust says; otherwise the
  // request fails (500, fail closed: Fastify's request.ip could be spoofable) and the log says what
  // to pass to Fastify(). Peers are remembered in a bounded set, so the cost is one check per peer.
  const verifiedPeers = new Set<string>()
  function verifyInstanceTrust (request: FastifyRequest, peer: string, peerTrusted: boolean): void {
    if (verifiedPeers.has(peer)) return
    const headers = request.headers
    const problems: string[] = []
    if (headers['x-forwarded-for'] !== undefined) {
      const expected = peerTrusted ? proxyAddr.all(request.raw, (address) => trusted(address)) : [peer]
      const actual = request.ips ?? [request.ip]
      if (expected.join(',') !== actual.join(',')) problems.push(`request.ips is ${JSON.stringify(actual)} where TRUST_PROXY gives ${JSON.stringify(expected)}`)
    }
    const xfp = headers['x-forwarded-proto']
    // Over TLS on the socket itself request.secure ignores the headers (Fastify's request.protocol
    // believes a trusted peer's header even then): only plain sockets are compared.
    if (typeof xfp === 'string' && (request.raw.socket as { encrypted?: boolean }).encrypted !== true) {
      const expected = peerTrusted ? lastEntry(xfp) : 'http'
      const actual = request.protocol.toLowerCase()
      if (expected !== actual) problems.push(`request.protocol is ${actual} where TRUST_PROXY gives ${expected}`)
    }
    if (problems.length > 0) {
      throw new ERR_INSTANCE_MISMATCH(
        `the instance's trustProxy does not match proxyTrust.trust (TRUST_PROXY=${describeTrust(trustValue)}) for peer ${peer}: ${problems.join('; ')}. ` +
        'Fastify fixes trustProxy at construction, so build it with the suite\'s options: Fastify({ ...(await serverOptions(config)) })')
    }
    if (verifiedPeers.size >= TRUST_CACHE_SIZE) verifiedPeers.clear()
    verifiedPeers.add(peer)
  }

  function isTrustedPeer (request: FastifyRequest): boolean {
    const peer = request.raw.socket?.remoteAddress
    return peer !== undefined && trusted(peer)
  }

  // Worked out once per request, on first use: the redirect, HSTS, the session and the route may
  // all ask, and parsing Forwarded costs more than a property read.
  function evaluate (request: FastifyRequest & Memo): void {
    request[kForwarded] = null
    if ((request.raw.socket as { encrypted?: boolean }).encrypted === true) {
      request[kSecure] = true
      return
    }
    if (!isTrustedPeer(request)) {
      request[kSecure] = false
      return
    }
    const headers = request.headers
    const xfp = headers['x-forwarded-proto']
    const fromXfp = typeof xfp === 'string' ? lastEntry(xfp) : undefined
    if (!useForwarded) {
      request[kSecure] = fromXfp === 'https'
      return
    }
    const forwarded = headers.forwarded
    const element = typeof forwarded === 'string' ? lastForwardedElement(forwarded) : null
    request[kForwarded] = element
    const fromForwarded = element?.proto
    // Two proxies (or a proxy and a client it let through) telling different stories: believe neither.
    request[kSecure] = fromXfp !== undefined && fromForwarded !== undefined && fromXfp !== fromForwarded
      ? false
      : (fromForwarded ?? fromXfp) === 'https'
  }

  fastify.decorateRequest(kSecure, null)
  fastify.decorateRequest(kForwarded, null)
  fastify.decorateRequest('secure', {
    getter (this: FastifyRequest): boolean {
      const request = this as FastifyRequest & Memo
      if (request[kSecure] === null) evaluate(request)
      return request[kSecure] as boolean
    }
  })
  fastify.decorateRequest('forwarded', {
    getter (this: FastifyRequest): ForwardedElement | null {
      const request = this as FastifyRequest & Memo
      if (request[kSecure] === null) evaluate(request)
      return request[kForwarded]
    }
  })

  const limit = eventLimiter(config.eventsPerMinute)
  const report = (request: FastifyRequest, event: 'proxy.untrusted-forwarded' | 'proxy.conflicting-forwarded', message: string, fields: Record<string, unknown>): void => {
    const suppressed = limit()
    if (suppressed === false) return unloggedSecurityEvent(event)
    securityEvent(request.log, event, { remoteAddress: request.raw.socket.remoteAddress, suppressed, ...fields }, message)
  }

  fastify.addHook('onRequest', function proxyTrustCheck (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) {
    const headers = request.headers
    const xfp = headers['x-forwarded-proto']
    const forwarded = headers.forwarded
    if (xfp === undefined && forwarded === undefined && headers['x-forwarded-for'] === undefined && headers['x-forwarded-host'] === undefined) {
      done()
      return
    }
    const peer = request.raw.socket?.remoteAddress
    const peerTrusted = peer !== undefined && trusted(peer)
    if (peer !== undefined) {
      try {
        verifyInstanceTrust(request, peer, peerTrusted)
      } catch (error) {
        done(error as Error)
        return
      }
    }
    if (!peerTrusted) {
      report(request, 'proxy.untrusted-forwarded', 'ignored forwarding headers from a peer that is not a trusted proxy (TRUST_PROXY); a client trying to pose as HTTPS or as another IP, or a proxy missing from TRUST_PROXY', {
        headers: FORWARDING_HEADERS.filter((name) => headers[name] !== undefined)
      })
    } else if (useForwarded && typeof xfp === 'string' && typeof forwarded === 'string') {
      const a = lastEntry(xfp)
      const b = request.forwarded?.proto
      if (b !== undefined && a !== b) {
        report(request, 'proxy.conflicting-forwarded', 'X-Forwarded-Proto and Forwarded disagree; treating the request as not secure. Make the proxy set (not pass through) both headers, or remove one', { xForwardedProto: a, forwardedProto: b })
      }
    }
    done()
  })
}

/** Trust in reverse proxies, by address only; `request.secure`; spoofing made visible. */
export const proxyTrust = fp(proxyTrustPlugin, { fastify: '5.x', name: 'fastify-secure-https/proxy-trust' })
export default proxyTrust
