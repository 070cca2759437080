/**
 * Options of the `proxyTrust` plugin: which peers may speak for the client.
 *
 * Trust is by the address of the immediate peer and nothing else. Hop counts are refused: they
 * trust "the N-th address from the right of X-Forwarded-For", which the client writes itself.
 */
import { isIP } from 'node:net'
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

const trustEntrySchema = z.string().transform((value) => value.trim()).refine(isTrustEntry, {
  error: (issue) => /^\d+$/.test(String(issue.input).trim())
    ? `"${String(issue.input)}" looks like a hop count; ${HOP_COUNT_MESSAGE}`
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
