/**
 * Host names: the strict syntax of a Host header (or a forwarded host), the allowed-host entries of
 * ALLOWED_HOSTS (`*.example.com` for subdomains), and the options of the `hostAuthorization`
 * plugin. Pure validation: no Fastify, no I/O.
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import { isHostname } from './common.ts'

/** The longest Host value worth looking at: a 253-character name, a trailing dot, brackets and a port. */
export const MAX_HOST_LENGTH = 261

const LOCALHOST_NAMES: readonly string[] = Object.freeze(['localhost', '127.0.0.1', '::1'])

/** The names allowed in development whatever ALLOWED_HOSTS says: a page elsewhere cannot make a browser send them. */
export const developmentHosts = LOCALHOST_NAMES

function isDigit (c: number): boolean {
  return c >= 48 && c <= 57
}

/** 1 to 5 digits, at most 65535. */
function isPort (value: string, start: number): boolean {
  const length = value.length - start
  if (length < 1 || length > 5) return false
  let port = 0
  for (let i = start; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (!isDigit(c)) return false
    port = port * 10 + c - 48
  }
  return port <= 65535
}

/** A label: letters, digits, hyphen and underscore, 1 to 63 of them, no hyphen at either end. */
function isLabelRun (value: string, start: number, end: number): boolean {
  if (end <= start) return false
  let labelStart = start
  for (let i = start; i <= end; i++) {
    const c = i === end ? 46 : value.charCodeAt(i)
    if (c === 46 /* . */) {
      const length = i - labelStart
      if (length < 1 || length > 63) return false
      if (value.charCodeAt(labelStart) === 45 || value.charCodeAt(i - 1) === 45) return false
      labelStart = i + 1
      continue
    }
    const lower = c | 0x20
    if (!((lower >= 97 && lower <= 122) || isDigit(c) || c === 45 || c === 95)) return false
  }
  return true
}

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\//i

/**
 * An absolute-form request target (`GET http://host/path HTTP/1.1`, RFC 9112 section 3.2.2) split
 * into its authority and the rest (path, query), or null for a target of another form. The
 * authority ends at '/', '?' or '#' (RFC 3986 section 3.2), and at '\' as browsers read it; one
 * pass over the target. @internal
 */
export function splitAbsoluteForm (target: string): { authority: string, rest: string } | null {
  if (!ABSOLUTE_FORM.test(target)) return null
  const start = target.indexOf('://') + 3
  let end = start
  for (; end < target.length; end++) {
    const c = target.charCodeAt(end)
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */ || c === 92 /* \ */) break
  }
  return { authority: target.slice(start, end), rest: target.slice(end) }
}

/**
 * The host name of a Host header value (or of a forwarded `host`), lower-cased, without port,
 * IPv6 brackets or trailing dot; `null` when the value is not `name[:port]`, `IPv4[:port]` or
 * `[IPv6][:port]` (RFC 9110 section 7.2 with RFC 3986's uri-host, restricted to what DNS names and
 * IP literals can be). Runs in time linear in the value's length, and refuses anything longer than
 * a DNS name can be before looking at it.
 */
export function parseHost (value: string): string | null {
  const length = value.length
  if (length === 0 || length > MAX_HOST_LENGTH) return null
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']')
    if (close === -1) return null
    if (close + 1 < length && (value.charCodeAt(close + 1) !== 58 /* : */ || !isPort(value, close + 2))) return null
    const ip = value.slice(1, close)
    return isIP(ip) === 6 ? ip.toLowerCase() : null
  }
  let end = length
  const colon = value.indexOf(':')
  if (colon !== -1) {
    if (!isPort(value, colon + 1)) return null
    end = colon
  }
  // One trailing dot is the same name, fully qualified (RFC 1034 section 3.1).
  if (end > 1 && value.charCodeAt(end - 1) === 46) end--
  if (end === 0 || !isLabelRun(value, 0, end)) return null
  const name = value.slice(0, end).toLowerCase()
  // All digits and dots: it must then be a valid IPv4 address (no 999.1.1.1, no octal forms).
  let numeric = true
  for (let i = 0; i < name.length && numeric; i++) {
    const c = name.charCodeAt(i)
    numeric = isDigit(c) || c === 46
  }
  if (numeric && isIP(name) !== 4) return null
  return name
}

/** True for `*.example.com`: a wildcard entry, for every subdomain of example.com (not the name itself). */
export function isWildcardHost (entry: string): boolean {
  return entry.startsWith('*.')
}

/**
 * One ALLOWED_HOSTS entry: a host name or IP address (IPv6 with or without brackets), or
 * `*.example.com` for every subdomain of example.com; lower-cased, without trailing dot.
 */
export const allowedHostSchema = z
  .string({ error: 'must be a host name such as example.com' })
  .transform((value) => value.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, ''))
  .refine((value) => isWildcardHost(value) ? isHostname(value.slice(2)) && isIP(value.slice(2)) === 0 && value.slice(2).includes('.') : isHostname(value), {
    error: (issue) => `"${String(issue.input)}" is not a host name, an IP address or a wildcard such as *.example.com; write names without scheme, port or path`
  })

/** The list of allowed hosts. */
export const allowedHostsSchema = z.array(allowedHostSchema, { error: 'must be a list of host names, e.g. example.com,www.example.com,*.example.org' })

/** The exact names of a list (wildcards left out), e.g. for a certificate's names. @internal */
export function exactHosts (hosts: readonly string[]): string[] {
  return hosts.filter((host) => !isWildcardHost(host))
}

/**
 * Compiles allowed hosts into one test, once: a Set of exact names, and the suffixes (`.example.com`)
 * of the wildcards. The test takes a host already parsed by `parseHost`. @internal
 */
export function compileAllowedHosts (hosts: readonly string[]): (host: string) => boolean {
  const exact = new Set<string>()
  const suffixes: string[] = []
  for (const host of hosts) {
    if (isWildcardHost(host)) suffixes.push(host.slice(1))
    else exact.add(host)
  }
  if (suffixes.length === 0) return (host) => exact.has(host)
  return (host) => {
    if (exact.has(host)) return true
    for (const suffix of suffixes) {
      if (host.length > suffix.length && host.endsWith(suffix)) return true
    }
    return false
  }
}

/** Options of the `hostAuthorization` plugin. */
export const hostAuthorizationSchema = z.strictObject({
  /** Host names the app answers for (ALLOWED_HOSTS); `*.example.com` allows every subdomain. */
  allowedHosts: allowedHostsSchema.default([]),
  /** Status of the answer to a host not allowed: 400 (Django, Rails) or 421 Misdirected Request. */
  status: z.union([z.literal(400), z.literal(421)], { error: 'must be 400 or 421' }).default(400),
  /** Paths answered for any host (exact match, query left out): load-balancer probes by IP. */
  exempt: z.array(z.string().startsWith('/', { error: 'an exempt path must start with /' })).default(['/healthz']),
  /**
   * Called for a well-formed host that is not in `allowedHosts` (nor allowed at run time): return
   * true to let the request through. For names known only at run time (on-demand TLS). Code only.
   */
  isAllowed: z.custom<(host: string) => boolean>((value) => typeof value === 'function', { error: 'must be a function (host) => boolean' }).optional(),
  /** Most `host.unknown` events logged per minute; the rest are counted and the count logged with the next one. */
  eventsPerMinute: z.number().int().min(0).default(10),
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  if (value.production && value.allowedHosts.length === 0 && value.isAllowed === undefined) {
    ctx.addIssue({ code: 'custom', path: ['allowedHosts'], message: 'is required in production: without it a request for any Host is refused (or, with host authorization off, served: poisoned links, cache poisoning, DNS rebinding); list the site\'s names, e.g. ALLOWED_HOSTS=example.com,www.example.com' })
  }
})

/** What a user passes to the `hostAuthorization` plugin. */
export type HostAuthorizationOptions = z.input<typeof hostAuthorizationSchema>
/** The resolved `hostAuthorization` options. */
export type HostAuthorizationConfig = z.output<typeof hostAuthorizationSchema>
