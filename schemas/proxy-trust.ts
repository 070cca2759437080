/**
 * Options of the `proxyTrust` plugin: which peers may speak for the client.
 *
 * Trust is by the address of the immediate peer and nothing else. Hop counts are refused: they
 * trust "the N-th address from the right of X-Forwarded-For", which the client writes itself.
 */
import { isIP } from 'node:net'
import proxyAddr from 'proxy-addr'
import { z } from 'zod'

/** Named address ranges (as in proxy-addr). */
export const proxyPresets = {
  loopback: ['127.0.0.1/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']
} as const

/** The name of an address preset. */
export type ProxyPreset = keyof typeof proxyPresets

/** Why a hop count is refused, and what to write instead. @internal */
export const HOP_COUNT_MESSAGE = 'hop counts are refused: a hop count trusts whatever address sits N entries from the right of X-Forwarded-For, ' +
  'and the client writes those entries itself, so any client can pose as any IP or claim HTTPS (Fastify 5.12.1 stopped honouring them); ' +
  'list the proxies\' addresses instead, e.g. TRUST_PROXY=127.0.0.1, TRUST_PROXY=10.0.0.0/8 or TRUST_PROXY=loopback'

function isPreset (entry: string): entry is ProxyPreset {
  return Object.hasOwn(proxyPresets, entry)
}

/** True for an IP, a CIDR (v4 or v6) or a preset name. @internal */
export function isTrustEntry (entry: string): boolean {
  if (isPreset(entry)) return true
  const slash = entry.indexOf('/')
  if (slash === -1) return isIP(entry) !== 0
  const ip = entry.slice(0, slash)
  const bits = entry.slice(slash + 1)
  const family = isIP(ip)
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false
  return Number(bits) <= (family === 4 ? 32 : 128)
}

/** An IPv6 address as a 128-bit number (the address is valid: isIP said so). @internal */
export function ipv6ToBigInt (address: string): bigint {
  let text = address.toLowerCase()
  const zone = text.indexOf('%')
  if (zone !== -1) text = text.slice(0, zone)
  // A dotted IPv4 tail (::ffff:1.2.3.4) is two groups.
  const lastColon = text.lastIndexOf(':')
  const tail = text.slice(lastColon + 1)
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number)
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', rest] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = rest === undefined || rest === '' ? [] : rest.split(':')
  const groups = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
  let value = 0n
  for (const group of groups) value = (value << 16n) | BigInt(parseInt(group, 16))
  return value
}

/**
 * IPv6 blocks that hold every IPv4 address (the last 32 bits): IPv4-mapped ::ffff:0:0/96,
 * IPv4-compatible ::/96, and the NAT64 prefixes 64:ff9b::/96 and 64:ff9b:1::/48 (RFC 6052, 8215).
 * A range inside one trusts the IPv4 addresses it maps.
 */
const IPV4_EMBEDDING: ReadonlyArray<{ base: bigint, bits: number }> = [
  { base: ipv6ToBigInt('::ffff:0:0'), bits: 96 },
  { base: 0n, bits: 96 },
  { base: ipv6ToBigInt('64:ff9b::'), bits: 96 },
  { base: ipv6ToBigInt('64:ff9b:1::'), bits: 48 }
]

const LOCAL_IPV6: ReadonlyArray<{ base: bigint, bits: number }> = [
  { base: ipv6ToBigInt('fc00::'), bits: 7 },
  { base: ipv6ToBigInt('fe80::'), bits: 10 }
]

/** Widest IPv4 range accepted in production (/8: one organisation's network at most). */
export const WIDEST_IPV4_PREFIX = 8
/** Widest IPv6 range accepted in production (/32: one provider's allocation at most). */
export const WIDEST_IPV6_PREFIX = 32

/**
 * Why a trust entry covers the public internet, or null when it does not: an IPv4 range wider than
 * /8, an IPv6 range wider than /32, or an IPv6 range that maps IPv4 addresses and, read as IPv4, is
 * wider than /8 (`::ffff:0:0/96` is every IPv4 address). Presets and single addresses are fine. @internal
 */
export function publicInternetRange (entry: string): string | null {
  const slash = entry.indexOf('/')
  if (slash === -1) return null
  const ip = entry.slice(0, slash)
  const bits = Number(entry.slice(slash + 1))
  const family = isIP(ip)
  if (family === 4) {
    return bits < WIDEST_IPV4_PREFIX ? `${entry} spans ${2 ** (32 - bits)} IPv4 addresses (wider than /${WIDEST_IPV4_PREFIX})` : null
  }
  if (family !== 6) return null
  const address = ipv6ToBigInt(ip)
  // Unique local and link-local ranges are not reachable from the internet (the presets hold them).
  for (const block of LOCAL_IPV6) {
    const hostBits = BigInt(128 - block.bits)
    if (bits >= block.bits && (address >> hostBits) === (block.base >> hostBits)) return null
  }
  if (bits < WIDEST_IPV6_PREFIX) return `${entry} is wider than /${WIDEST_IPV6_PREFIX}`
  for (const block of IPV4_EMBEDDING) {
    const hostBits = BigInt(128 - block.bits)
    const sameBlock = (address >> hostBits) === (block.base >> hostBits)
    if (bits <= block.bits) {
      // The range holds the whole block when their common prefix is the range's.
      const rangeHostBits = BigInt(128 - bits)
      if ((address >> rangeHostBits) === (block.base >> rangeHostBits)) return `${entry} holds every IPv4 address (it contains ${block.bits === 96 && block.base === 0n ? '::/96, the IPv4-compatible block' : 'a block that maps all of IPv4'})`
    } else if (sameBlock && bits - (128 - 32) < WIDEST_IPV4_PREFIX) {
      return `${entry} maps an IPv4 range wider than /${WIDEST_IPV4_PREFIX}`
    }
  }
  return null
}

/** Whether proxy-addr (and so Fastify's trustProxy) accepts the entry; a /0 range it does not. */
function compiles (entry: string): boolean {
  try {
    proxyAddr.compile(expandPresets([entry]))
    return true
  } catch {
    return false
  }
}

const trustEntrySchema = z.string().transform((value) => value.trim()).refine((entry) => isTrustEntry(entry) && compiles(entry), {
  error: (issue) => /^\d+$/.test(String(issue.input).trim())
    ? `"${String(issue.input)}" looks like a hop count; ${HOP_COUNT_MESSAGE}`
    : /\/0+$/.test(String(issue.input).trim()) && isIP(String(issue.input).trim().split('/')[0] ?? '') !== 0
      ? `"${String(issue.input)}" is every address: it trusts every peer, and any client could claim HTTPS or another IP; list the proxies' addresses (TRUST_PROXY=true does this in development only)`
      : `"${String(issue.input)}" is not an IP address, a CIDR range or one of ${Object.keys(proxyPresets).join(', ')}; ` +
        'write e.g. 127.0.0.1, 10.0.0.0/8, fd00::/8 or loopback'
})

const TRUST_TYPE_MESSAGE = 'must be false, true (development only) or a list of IPs, CIDRs and presets, e.g. ["127.0.0.1", "10.0.0.0/8", "loopback"]'

/**
 * `trust`: a boolean, a list, or the same list as one comma-separated string (as Fastify accepts).
 * A number is accepted by the parser only to be refused with the reason, rather than with a
 * generic type error: it is what Fastify's own `trustProxy: 1` looked like.
 */
const trustSchema = z.union([
  z.boolean(),
  z.array(trustEntrySchema),
  z.string().transform((value) => value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')).pipe(z.array(trustEntrySchema)),
  z.number()
], { error: TRUST_TYPE_MESSAGE }).transform((value, ctx): boolean | string[] => {
  if (typeof value === 'number') {
    ctx.addIssue({ code: 'custom', message: `${value} is a hop count; ${HOP_COUNT_MESSAGE}` })
    return z.NEVER
  }
  return value
})

/** Options of the `proxyTrust` plugin. */
export const proxyTrustSchema = z.strictObject({
  /**
   * Which immediate peers may set X-Forwarded-* (and Forwarded): `false` trusts no one; a list of
   * IPs, CIDRs and presets trusts those; `true` trusts everyone (refused in production).
   */
  trust: trustSchema.default(false),
  /** Also read RFC 7239 `Forwarded` from trusted peers (env TRUST_FORWARDED). */
  forwarded: z.boolean().default(false),
  /** Trust is mandatory (TLS ends at a proxy). Filled in by the aggregate. */
  required: z.boolean().default(false),
  /** Most proxy security events logged per minute; the rest are counted and the count logged with the next one. */
  eventsPerMinute: z.number().int().min(0).default(10),
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  if (value.production && value.trust === true) {
    ctx.addIssue({ code: 'custom', path: ['trust'], message: 'trusting every peer is refused in production: any client could claim to be on HTTPS or spoof its IP; list the proxies\' addresses, e.g. TRUST_PROXY=10.0.0.0/8' })
  }
  if (value.production && Array.isArray(value.trust)) {
    for (const entry of value.trust) {
      if (!compiles(entry)) continue
      const why = publicInternetRange(entry)
      if (why !== null) {
        ctx.addIssue({ code: 'custom', path: ['trust'], message: `"${entry}" covers the public internet and is refused in production: ${why}, so it trusts nearly every peer and any client there could claim HTTPS or another IP; list the proxies' own addresses or subnet, e.g. TRUST_PROXY=10.0.3.0/24` })
      }
    }
  }
  if (value.required && (value.trust === false || (Array.isArray(value.trust) && value.trust.length === 0))) {
    ctx.addIssue({ code: 'custom', path: ['trust'], message: 'is required with TLS_MODE=proxy: without it every request looks like plain HTTP and redirects forever; set TRUST_PROXY to the proxy\'s address, e.g. 127.0.0.1' })
  }
})

/** What a user passes to the `proxyTrust` plugin. */
export type ProxyTrustOptions = z.input<typeof proxyTrustSchema>
/** The resolved `proxyTrust` options. */
export type ProxyTrustConfig = z.output<typeof proxyTrustSchema>

/** Presets expanded into their ranges. @internal */
export function expandPresets (entries: readonly string[]): string[] {
  return entries.flatMap((entry) => isPreset(entry) ? [...proxyPresets[entry]] : [entry])
}

/** The value handed to Fastify's `trustProxy` (presets expanded). @internal */
export function trustProxyValue (trust: ProxyTrustConfig['trust']): boolean | string[] {
  if (typeof trust === 'boolean') return trust
  if (trust.length === 0) return false
  return expandPresets(trust)
}
