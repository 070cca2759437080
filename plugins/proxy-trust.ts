/**
 * The `proxyTrust` plugin: which peers may say that a request arrived over HTTPS, from which client,
 * for which host. Trust is by the immediate peer's address only: Fastify's `trustProxy` is built from
 * the same list (`serverOptions`), and this plugin checks the instance agrees, adds `request.secure`
 * (which also understands RFC 7239 Forwarded when asked to), and logs forwarding headers sent by
 * peers that are not trusted, since those are either a misconfiguration or an attack.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isIP } from 'node:net'
import proxyAddr from 'proxy-addr'
import { ERR_INSTANCE_MISMATCH } from '../errors.ts'
import { isProductionEnv, parseOptions } from '../schemas/common.ts'
import { MAX_HOST_LENGTH, parseHost } from '../schemas/host-authorization.ts'
import { expandPresets, proxyTrustSchema, trustProxyValue, type ProxyTrustOptions } from '../schemas/proxy-trust.ts'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.ts'
import { addRequestStep } from './hook-chain.ts'

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

/** tchar of RFC 9110 section 5.6.2, by character code. */
const TCHAR = new Uint8Array(128)
for (const c of '!#$%&\'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ') TCHAR[c.charCodeAt(0)] = 1

function isObfuscated (value: string, start: number, end: number): boolean {
  // obfnode / obfport: "_" 1*( ALPHA / DIGIT / "." / "_" / "-" )
  if (end - start < 2 || value.charCodeAt(start) !== 95) return false
  for (let i = start + 1; i < end; i++) {
    const c = value.charCodeAt(i)
    const lower = c | 0x20
    if (!((lower >= 97 && lower <= 122) || (c >= 48 && c <= 57) || c === 46 || c === 95 || c === 45)) return false
  }
  return true
}

/**
 * RFC 7239 section 6: node = nodename [ ":" node-port ], nodename = IPv4 / "[" IPv6 "]" /
 * "unknown" / obfnode, node-port = 1*5DIGIT / obfport. @internal
 */
export function isForwardedNode (value: string): boolean {
  if (value.length === 0 || value.length > 80) return false
  let nameEnd: number
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']')
    if (close === -1 || isIP(value.slice(1, close)) !== 6) return false
    nameEnd = close + 1
  } else {
    const colon = value.indexOf(':')
    nameEnd = colon === -1 ? value.length : colon
    const name = value.slice(0, nameEnd)
    if (!(isIP(name) === 4 || name.toLowerCase() === 'unknown' || isObfuscated(value, 0, nameEnd))) return false
  }
  if (nameEnd === value.length) return true
  if (value.charCodeAt(nameEnd) !== 58 /* : */) return false
  const port = value.slice(nameEnd + 1)
  return /^\d{1,5}$/.test(port) ? Number(port) <= 65535 : isObfuscated(value, nameEnd + 1, value.length)
}

const PROTO = /^[a-z][a-z0-9+.-]{0,31}$/

function validPair (key: string, value: string): boolean {
  switch (key) {
    case 'for': case 'by': return isForwardedNode(value)
    case 'host': return parseHost(value) !== null
    case 'proto': return PROTO.test(value.toLowerCase())
    default: return true
  }
}

/**
 * Parses a Forwarded header (RFC 7239 section 4, with RFC 9110's token and quoted-string) in one pass,
 * in time linear in its length, and returns its last element: the one added by the nearest proxy,
 * the only one that proxy vouches for (the others were written by whoever came before it, the
 * client included). Several header lines arrive joined by commas, so the last line's last element
 * wins. Returns null for a header that does not follow the grammar anywhere (a quote left open, a
 * character outside token and quoted-string, a `for`/`by` that is not a node, a `host` that is not a
 * host, a `proto` that is not a scheme): a header that does
 * not parse cannot be split into elements safely, so none of it is believed; so does a parameter
 * repeated within an element.
 */
export function lastForwardedElement (header: string): ForwardedElement | null {
  const n = header.length
  let i = 0
  // The element being read, in locals (no allocation per element); `seen` marks its parameters.
  let forValue: string | undefined
  let byValue: string | undefined
  let hostValue: string | undefined
  let protoValue: string | undefined
  let seen = 0
  let extensions: Set<string> | null = null
  let last: ForwardedElement | null = null
  while (true) {
    while (i < n && (header.charCodeAt(i) === 32 || header.charCodeAt(i) === 9)) i++
    let c = i < n ? header.charCodeAt(i) : 44
    if (c === 44 /* , or the end */) {
      if (seen !== 0) {
        last = {}
        if (forValue !== undefined) last.for = forValue
        if (protoValue !== undefined) last.proto = protoValue
        if (hostValue !== undefined) last.host = hostValue
        if (byValue !== undefined) last.by = byValue
        forValue = byValue = hostValue = protoValue = undefined
        seen = 0
        extensions = null
      }
      if (i >= n) return last
      i++
      continue
    }
    if (c === 59 /* ; */) { i++; continue }
    const keyStart = i
    while (i < n && (c = header.charCodeAt(i)) < 128 && TCHAR[c] === 1) i++
    if (i === keyStart || i >= n || header.charCodeAt(i) !== 61 /* = */) return null
    const keyEnd = i
    i++
    let valueStart = i
    let valueEnd: number
    let escaped = false
    if (i < n && header.charCodeAt(i) === 34 /* " */) {
      i++
      valueStart = i
      while (true) {
        if (i >= n) return null
        c = header.charCodeAt(i)
        if (c === 34) break
        if (c === 92 /* backslash */) {
          const next = i + 1 < n ? header.charCodeAt(i + 1) : -1
          if (next === -1 || next === 127 || (next < 32 && next !== 9)) return null
          escaped = true
          i += 2
          continue
        }
        if (c === 127 || (c < 32 && c !== 9)) return null
        i++
      }
      valueEnd = i
      i++
    } else {
      while (i < n && (c = header.charCodeAt(i)) < 128 && TCHAR[c] === 1) i++
      if (i === valueStart) return null
      valueEnd = i
    }
    const key = keyEnd - keyStart <= 5 ? header.slice(keyStart, keyEnd).toLowerCase() : ''
    const bit = key === 'for' ? 1 : key === 'by' ? 2 : key === 'host' ? 4 : key === 'proto' ? 8 : 0
    if (bit === 0) {
      // An extension parameter: only its uniqueness matters, its value is skipped unread.
      const name = header.slice(keyStart, keyEnd).toLowerCase()
      extensions ??= new Set()
      if (extensions.has(name)) return null
      extensions.add(name)
      seen |= 16
    } else {
      // A parameter repeated within an element (RFC 7239 section 4), or a known parameter too long to
      // be what it claims: the header cannot be trusted to say where elements begin and end.
      if ((seen & bit) !== 0 || valueEnd - valueStart > MAX_HOST_LENGTH) return null
      seen |= bit
      const raw = header.slice(valueStart, valueEnd)
      const value = escaped ? raw.replace(/\\(.)/gs, '$1') : raw
      if (!validPair(key, value)) return null
      if (bit === 1) forValue = value
      else if (bit === 2) byValue = value
      else if (bit === 4) hostValue = value
      else protoValue = value.toLowerCase()
    }
    while (i < n && (header.charCodeAt(i) === 32 || header.charCodeAt(i) === 9)) i++
    if (i < n) {
      c = header.charCodeAt(i)
      if (c === 59) { i++; continue }
      if (c !== 44) return null
    }
  }
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

/**
 * What `evaluate` found, kept in one request decorator (each costs a store in Fastify's request
 * constructor on every request): null before it ran, the verdict alone when no Forwarded element
 * was believed, or both.
 */
const kMemo = Symbol('fastify-secure-https.secure')
interface Judged { readonly secure: boolean, readonly forwarded: ForwardedElement }
interface Memo { [kMemo]: boolean | Judged | null }

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
  // checked against ours where it shows: the first request of each peer address that carries the
  // header each of Fastify's request.ips, request.protocol and request.host reads. They must say
  // what our trust says; otherwise the request fails (500, fail closed: Fastify's request.ip could
  // be spoofable) and the log says what to pass to Fastify(). What was checked is remembered per
  // peer and per header (a request with only X-Forwarded-Host says nothing of how the instance
  // reads X-Forwarded-For), in a bounded map, so the cost is one check per peer and header.
  const verifiedPeers = new Map<string, number>()
  const IPS = 1
  const PROTOCOL = 2
  const HOST = 4
  function verifyInstanceTrust (request: FastifyRequest, peer: string, peerTrusted: boolean): void {
    const headers = request.headers
    const xfp = headers['x-forwarded-proto']
    const xfh = headers['x-forwarded-host']
    // Over TLS on the socket itself request.secure ignores the headers (Fastify's request.protocol
    // believes a trusted peer's header even then): only plain sockets are compared. An empty header
    // is none, for Fastify as here (it falls back to the socket's protocol, or the Host header).
    const needed = (headers['x-forwarded-for'] !== undefined ? IPS : 0) |
      (typeof xfp === 'string' && xfp !== '' && (request.raw.socket as { encrypted?: boolean }).encrypted !== true ? PROTOCOL : 0) |
      (typeof xfh === 'string' && xfh !== '' ? HOST : 0)
    const done = verifiedPeers.get(peer) ?? 0
    if ((done & needed) === needed) return
    const problems: string[] = []
    if ((needed & IPS) !== 0) {
      const expected = peerTrusted ? proxyAddr.all(request.raw, (address) => trusted(address)) : [peer]
      const actual = request.ips ?? [request.ip]
      if (expected.join(',') !== actual.join(',')) problems.push(`request.ips is ${JSON.stringify(actual)} where TRUST_PROXY gives ${JSON.stringify(expected)}`)
    }
    if ((needed & PROTOCOL) !== 0) {
      const expected = peerTrusted ? lastEntry(xfp as string) : 'http'
      const actual = request.protocol.toLowerCase()
      if (expected !== actual) problems.push(`request.protocol is ${actual} where TRUST_PROXY gives ${expected}`)
    }
    if ((needed & HOST) !== 0) {
      // As Fastify reads them: X-Forwarded-Host's last entry, trimmed, from a trusted peer; else Host.
      const comma = (xfh as string).lastIndexOf(',')
      const expected = peerTrusted ? (xfh as string).slice(comma + 1).trim() : headers.host ?? headers[':authority'] as string | undefined ?? ''
      const actual = request.host
      if (expected !== actual) problems.push(`request.host is ${JSON.stringify(actual)} where TRUST_PROXY gives ${JSON.stringify(expected)}`)
    }
    if (problems.length > 0) {
      throw new ERR_INSTANCE_MISMATCH(
        `the instance's trustProxy does not match proxyTrust.trust (TRUST_PROXY=${describeTrust(trustValue)}) for peer ${peer}: ${problems.join('; ')}. ` +
        'Fastify fixes trustProxy at construction, so build it with the suite\'s options: Fastify({ ...(await serverOptions(config)) })')
    }
    if (done === 0 && verifiedPeers.size >= TRUST_CACHE_SIZE) verifiedPeers.clear()
    verifiedPeers.set(peer, done | needed)
  }

  function isTrustedPeer (request: FastifyRequest): boolean {
    const peer = request.raw.socket?.remoteAddress
    return peer !== undefined && trusted(peer)
  }

  // Worked out once per request, on first use: the redirect, HSTS, the session and the route may
  // all ask, and parsing Forwarded costs more than a property read.
  function evaluate (request: FastifyRequest & Memo): boolean | Judged {
    const judged = judge(request)
    request[kMemo] = judged
    return judged
  }

  function judge (request: FastifyRequest): boolean | Judged {
    // A request without a socket (fastify.routing() with a bare req/res, a serverless adapter) came
    // from no peer: nothing it says about forwarding is believed.
    if ((request.raw.socket as { encrypted?: boolean } | null | undefined)?.encrypted === true) return true
    if (!isTrustedPeer(request)) return false
    const headers = request.headers
    const xfp = headers['x-forwarded-proto']
    const fromXfp = typeof xfp === 'string' ? lastEntry(xfp) : undefined
    if (!useForwarded) return fromXfp === 'https'
    const forwarded = headers.forwarded
    let element = typeof forwarded === 'string' ? lastForwardedElement(forwarded) : null
    // A Host that is not a host (quotes, commas, semicolons) is how a client writes Forwarded elements
    // of its own through a proxy that copies Host into Forwarded without escaping it (haproxy's
    // host=\"%[req.hdr(host)]\"): the element that looks like the proxy's may be the client's.
    const host = headers.host
    if (element !== null && host !== undefined && parseHost(host) === null) element = null
    const fromForwarded = element?.proto
    // Two proxies (or a proxy and a client it let through) telling different stories: believe neither.
    const secure = fromXfp !== undefined && fromForwarded !== undefined && fromXfp !== fromForwarded
      ? false
      : (fromForwarded ?? fromXfp) === 'https'
    return element === null ? secure : { secure, forwarded: element }
  }

  fastify.decorateRequest(kMemo, null)
  fastify.decorateRequest('secure', {
    getter (this: FastifyRequest): boolean {
      const request = this as FastifyRequest & Memo
      const memo = request[kMemo] ?? evaluate(request)
      return typeof memo === 'boolean' ? memo : memo.secure
    }
  })
  fastify.decorateRequest('forwarded', {
    getter (this: FastifyRequest): ForwardedElement | null {
      const request = this as FastifyRequest & Memo
      const memo = request[kMemo] ?? evaluate(request)
      return typeof memo === 'boolean' ? null : memo.forwarded
    }
  })

  const limit = eventLimiter(config.eventsPerMinute)
  const report = (request: FastifyRequest, event: 'proxy.untrusted-forwarded' | 'proxy.conflicting-forwarded', message: string, fields: Record<string, unknown>): void => {
    const suppressed = limit()
    if (suppressed === false) return unloggedSecurityEvent(event)
    securityEvent(request.log, event, { remoteAddress: request.raw.socket?.remoteAddress, suppressed, ...fields }, message)
  }

  addRequestStep(fastify, options, 'proxyTrustCheck', function proxyTrustCheck (request: FastifyRequest) {
    const headers = request.headers
    const xfp = headers['x-forwarded-proto']
    const forwarded = headers.forwarded
    if (xfp === undefined && forwarded === undefined && headers['x-forwarded-for'] === undefined && headers['x-forwarded-host'] === undefined) return undefined
    const peer = request.raw.socket?.remoteAddress
    const peerTrusted = peer !== undefined && trusted(peer)
    if (peer !== undefined) {
      try {
        verifyInstanceTrust(request, peer, peerTrusted)
      } catch (error) {
        return error as Error
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
    return undefined
  })
}

/** Trust in reverse proxies, by address only; `request.secure`; spoofing made visible. */
export const proxyTrust = fp(proxyTrustPlugin, { fastify: '5.x', name: 'fastify-secure-https/proxy-trust' })
export default proxyTrust
