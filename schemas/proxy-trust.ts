/**
 * Options of the `proxyTrust` plugin: which peers may speak for the client.
 */
import { isIP } from 'node:net'
import { z } from 'zod'

/** Named address ranges (as in proxy-addr). */
export const proxyPresets = {
  loopback: ['127.0.0.1/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']
} as const

const HOP_COUNT_MESSAGE = 'hop counts are refused: any client can add enough X-Forwarded-For entries to pass them (Fastify 5.12.1 stopped honouring them); list the proxies\' addresses instead, e.g. TRUST_PROXY=127.0.0.1 or 10.0.0.0/8 or loopback'

/** True for an IP, a CIDR (v4 or v6) or a preset name. @internal */
export function isTrustEntry (entry: string): boolean {
  if (entry in proxyPresets) return true
  const slash = entry.indexOf('/')
  if (slash === -1) return isIP(entry) !== 0
  const ip = entry.slice(0, slash)
  const bits = entry.slice(slash + 1)
  const family = isIP(ip)
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false
  return Number(bits) <= (family === 4 ? 32 : 128)
}

const trustEntrySchema = z.string().transform((value) => value.trim()).refine(isTrustEntry, {
  error: (issue) => /^\d+$/.test(String(issue.input))
    ? `"${String(issue.input)}" looks like a hop count; ${HOP_COUNT_MESSAGE}`
    : `"${String(issue.input)}" is not an IP address, a CIDR range or one of ${Object.keys(proxyPresets).join(', ')}`
})

/** Options of the `proxyTrust` plugin. */
export const proxyTrustSchema = z.strictObject({
  /** `false`: trust no one. A list: trust these peers. `true`: everyone (development only). */
  trust: z.union([
    z.boolean(),
    z.array(trustEntrySchema),
    z.number().transform((_, ctx) => { ctx.addIssue({ code: 'custom', message: HOP_COUNT_MESSAGE }); return z.NEVER })
  ], { error: 'must be false, true (development only) or a list of IPs, CIDRs and presets' }).default(false),
  /** Parse RFC 7239 `Forwarded` from trusted peers as well as X-Forwarded-*. */
  forwarded: z.boolean().default(false),
  /** Trust is mandatory (TLS ends at a proxy). Filled in by the aggregate. */
  required: z.boolean().default(false),
  /** Most `proxy.untrusted-forwarded` events logged per minute. */
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

/** The list handed to Fastify's `trustProxy` (presets expanded). @internal */
export function trustProxyValue (trust: ProxyTrustConfig['trust']): boolean | string[] {
  if (typeof trust === 'boolean') return trust
  if (trust.length === 0) return false
  return trust.flatMap((entry) => entry in proxyPresets ? [...proxyPresets[entry as keyof typeof proxyPresets]] : [entry])
}
