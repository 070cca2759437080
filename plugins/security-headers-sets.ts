/**
 * What the `securityHeaders` plugin sends, computed once per route: helmet's headers for the route's
 * options (run through helmet's own middleware against a recording response, so the strings are
 * helmet's), the short API set, and the Content-Security-Policy split around its nonces. Knows
 * helmet, not Fastify. @internal
 */
import helmet, { type HelmetOptions } from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  serializePermissionsPolicy,
  type CspConfig,
  type DirectiveFunction,
  type Directives,
  type ResponseKind,
  type SecurityHeadersConfig,
  type SecurityHeadersRouteConfig
} from '../schemas/security-headers.ts'

/** The header options of one route: the plugin's, with the route's `helmet` option over them. @internal */
export type HeaderOptions = Omit<SecurityHeadersConfig, 'global' | 'responseKind'> & { strictTransportSecurity?: false }

/** Header names and values, lower-case names, in the order they are set. @internal */
export interface HeaderList {
  readonly names: readonly string[]
  readonly values: readonly string[]
}

/** Where the per-request nonces are kept on the raw response, for directive functions. @internal */
export const kScriptNonce = Symbol('fastify-secure-https.scriptNonce')
/** @internal */
export const kStyleNonce = Symbol('fastify-secure-https.styleNonce')

type NonceCarrier = ServerResponse & { [kScriptNonce]?: string, [kStyleNonce]?: string }
type Middleware = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void

/** Everything a route's answers need, settled when the route is declared. @internal */
export interface Plan {
  /** Which set answers get. */
  readonly kind: ResponseKind
  /** No headers from the plugin (route `helmet: false`, or `global: false` without a route option). */
  readonly skip: boolean
  /** Per-request nonces (`reply.cspNonce`). */
  readonly nonces: boolean
  /** helmet's full set, without the CSP when it carries nonces; null when helmet runs per request. */
  readonly html: HeaderList | null
  /** The short set for API answers (OWASP REST Security Cheat Sheet). */
  readonly api: HeaderList
  /** With nonces: the CSP header, its value split where the script and the style nonce go, and its value without them. */
  readonly csp: { readonly name: string, readonly parts: readonly [string, string, string], readonly scriptFirst: boolean, readonly withoutNonces: string } | null
  /** helmet's middleware, run per request on the raw response, when a directive is a function. */
  readonly dynamic: Middleware | null
  /** With `dynamic`: what HTML answers get beside helmet's headers (Permissions-Policy, which helmet does not set). */
  readonly extra: HeaderList
  /** Route `hsts: false`: take the hsts plugin's header off this route's answers. */
  readonly removeHsts: boolean
  /** The options, for `reply.helmet()`. */
  readonly options: HeaderOptions
}

/** The route's options over the plugin's, option by option, as @fastify/helmet merges them. @internal */
export function mergeOptions (base: HeaderOptions, route: SecurityHeadersRouteConfig): HeaderOptions {
  const merged: Record<string, unknown> = { ...base }
  for (const [name, value] of Object.entries(route)) {
    if (value !== undefined) merged[name] = value
  }
  return merged as HeaderOptions
}

const SCRIPT_PLACEHOLDER = "'nonce-\u0001'"
const STYLE_PLACEHOLDER = "'nonce-\u0002'"

/**
 * The CSP directives helmet gets: the user's, plus the suite's defaults when helmet's are on
 * (frame-ancestors 'none' unless the user set it), without upgrade-insecure-requests when TLS is off
 * (unless the user named it), with nonce sources appended when asked.
 */
export function cspDirectives (csp: Exclude<CspConfig, false>, upgradeInsecureRequests: boolean, nonces?: { script: string | DirectiveFunction, style: string | DirectiveFunction }): Directives {
  const directives: Directives = { ...csp.directives }
  if (csp.useDefaults && !('frame-ancestors' in directives)) directives['frame-ancestors'] = ["'none'"]
  if (!upgradeInsecureRequests && !('upgrade-insecure-requests' in csp.directives)) directives['upgrade-insecure-requests'] = null
  if (nonces !== undefined) {
    // Appended to what the directive holds, or to helmet's default for it: 'self' stays next to the
    // nonce, as with @fastify/helmet without options.
    const defaults = helmet.contentSecurityPolicy.getDefaultDirectives()
    for (const [name, nonce] of [['script-src', nonces.script], ['style-src', nonces.style]] as const) {
      const own = directives[name]
      const base = Array.isArray(own) ? own : own === undefined && csp.useDefaults ? [...(defaults[name] ?? [])] : []
      directives[name] = [...base, nonce]
    }
  }
  return directives
}

/** helmet's options for these header options: the suite's CSP, no HSTS. @internal */
export function helmetOptionsOf (options: HeaderOptions, nonces?: { script: string | DirectiveFunction, style: string | DirectiveFunction }): HelmetOptions {
  const csp = options.contentSecurityPolicy
  return {
    contentSecurityPolicy: csp === false
      ? false
      : { useDefaults: csp.useDefaults, reportOnly: csp.reportOnly, directives: cspDirectives(csp, options.upgradeInsecureRequests, nonces) } as HelmetOptions['contentSecurityPolicy'],
    crossOriginEmbedderPolicy: options.crossOriginEmbedderPolicy,
    crossOriginOpenerPolicy: options.crossOriginOpenerPolicy,
    crossOriginResourcePolicy: options.crossOriginResourcePolicy,
    originAgentCluster: options.originAgentCluster,
    // helmet's default is no-referrer, with which browsers send `Origin: null` on the site's own
    // form posts and break Origin-based CSRF checks; this keeps the origin for same-origin requests.
    referrerPolicy: options.referrerPolicy === true ? { policy: 'strict-origin-when-cross-origin' } : options.referrerPolicy,
    strictTransportSecurity: false,
    xContentTypeOptions: options.xContentTypeOptions,
    xDnsPrefetchControl: options.xDnsPrefetchControl,
    xDownloadOptions: options.xDownloadOptions,
    xFrameOptions: options.xFrameOptions as HelmetOptions['xFrameOptions'],
    xPermittedCrossDomainPolicies: options.xPermittedCrossDomainPolicies,
    xPoweredBy: options.xPoweredBy,
    xXssProtection: options.xXssProtection
  } as HelmetOptions
}

/** True when a directive is computed per request. */
function hasFunctions (options: HeaderOptions): boolean {
  const csp = options.contentSecurityPolicy
  if (csp === false) return false
  return Object.values(csp.directives).some((value) => Array.isArray(value) && value.some((source) => typeof source === 'function'))
}

/** Runs helmet's middleware once against a response that records what it sets. @internal */
export function recordHeaders (middleware: Middleware): Array<[string, string]> {
  const headers = new Map<string, string>()
  const recorder = {
    setHeader (name: string, value: string | number | readonly string[]) {
      headers.set(name.toLowerCase(), Array.isArray(value) ? value.join(', ') : String(value))
    },
    removeHeader (name: string) { headers.delete(name.toLowerCase()) },
    getHeader (name: string) { return headers.get(name.toLowerCase()) }
  }
  let failure: unknown
  middleware({ headers: {} } as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => { failure = error })
  if (failure !== undefined) throw failure
  return [...headers]
}

function listOf (entries: ReadonlyArray<readonly [string, string]>): HeaderList {
  return Object.freeze({ names: Object.freeze(entries.map(([name]) => name)), values: Object.freeze(entries.map(([, value]) => value)) })
}

const NONE = listOf([])

/**
 * The short set for API answers, after OWASP's REST Security Cheat Sheet: no caching, no framing, no
 * sniffing. Framing and sniffing follow the options: turned off, they stay off; an explicit
 * frame-ancestors or X-Frame-Options action is kept.
 */
export function apiHeaders (options: HeaderOptions): Array<[string, string]> {
  const headers: Array<[string, string]> = [['cache-control', 'no-store']]
  const csp = options.contentSecurityPolicy
  if (csp !== false) {
    const own = csp.directives['frame-ancestors']
    const ancestors = Array.isArray(own) && own.length > 0 && own.every((source) => typeof source === 'string') ? own.join(' ') : "'none'"
    headers.push(['content-security-policy', `frame-ancestors ${ancestors}`])
  }
  if (options.xContentTypeOptions) headers.push(['x-content-type-options', 'nosniff'])
  const frame = options.xFrameOptions
  if (frame !== false) {
    const action = frame === true || frame.action === undefined ? 'DENY' : frame.action.toUpperCase() === 'DENY' ? 'DENY' : 'SAMEORIGIN'
    headers.push(['x-frame-options', action])
  }
  return headers
}

function permissionsPolicyHeader (options: HeaderOptions): Array<[string, string]> {
  const policy = options.permissionsPolicy
  if (policy === false) return []
  const value = serializePermissionsPolicy(policy)
  return value === '' ? [] : [['permissions-policy', value]]
}

/** The nonces' directive functions: they read what the request's hook put on the raw response. */
const scriptNonceSource: DirectiveFunction = (_req, res) => `'nonce-${(res as NonceCarrier)[kScriptNonce] ?? ''}'`
const styleNonceSource: DirectiveFunction = (_req, res) => `'nonce-${(res as NonceCarrier)[kStyleNonce] ?? ''}'`

/**
 * Compiles the plan of a route (or of the plugin's default). helmet validates the options here, at
 * registration or route declaration: an option it refuses throws now, not on each request.
 */
export function compilePlan (options: HeaderOptions, kind: ResponseKind, skip: boolean): Plan {
  const nonces = options.enableCSPNonces && options.contentSecurityPolicy !== false
  const base = { kind, skip, nonces: options.enableCSPNonces, api: listOf(apiHeaders(options)), removeHsts: options.strictTransportSecurity === false, options }
  if (skip) return Object.freeze({ ...base, html: null, csp: null, dynamic: null, extra: NONE })

  if (hasFunctions(options)) {
    // A directive computed per request: helmet runs per request, as @fastify/helmet runs it; the
    // nonces reach it through functions reading the raw response.
    const dynamic = helmet(helmetOptionsOf(options, nonces ? { script: scriptNonceSource, style: styleNonceSource } : undefined))
    return Object.freeze({ ...base, html: null, csp: null, dynamic, extra: listOf(permissionsPolicyHeader(options)) })
  }

  const extra = permissionsPolicyHeader(options)
  if (!nonces) {
    return Object.freeze({ ...base, html: listOf([...recordHeaders(helmet(helmetOptionsOf(options))), ...extra]), csp: null, dynamic: null, extra: NONE })
  }

  const recorded = recordHeaders(helmet(helmetOptionsOf(options, { script: SCRIPT_PLACEHOLDER, style: STYLE_PLACEHOLDER })))
  const cspEntry = recorded.find(([name]) => name === 'content-security-policy' || name === 'content-security-policy-report-only')
  const value = cspEntry?.[1] ?? ''
  // The directives keep the user's order: style-src may come before script-src.
  const scriptFirst = value.indexOf('\u0001') < value.indexOf('\u0002')
  const [before, rest] = splitOnce(value, scriptFirst ? '\u0001' : '\u0002')
  const [middle, after] = splitOnce(rest, scriptFirst ? '\u0002' : '\u0001')
  const withoutNonces = recordHeaders(helmet({ contentSecurityPolicy: helmetOptionsOf(options).contentSecurityPolicy, ...OFF }))[0]?.[1] ?? ''
  return Object.freeze({
    ...base,
    html: listOf([...recorded.filter((entry) => entry !== cspEntry), ...extra]),
    csp: Object.freeze({ name: cspEntry?.[0] ?? 'content-security-policy', parts: Object.freeze([before, middle, after] as [string, string, string]), scriptFirst, withoutNonces }),
    dynamic: null,
    extra: NONE
  })
}

/** Every header of helmet's off but the CSP, to record the CSP alone. */
const OFF: HelmetOptions = {
  crossOriginEmbedderPolicy: false,
  crossOriginOpenerPolicy: false,
  crossOriginResourcePolicy: false,
  originAgentCluster: false,
  referrerPolicy: false,
  strictTransportSecurity: false,
  xContentTypeOptions: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xFrameOptions: false,
  xPermittedCrossDomainPolicies: false,
  xPoweredBy: false,
  xXssProtection: false
}

function splitOnce (value: string, placeholder: string): [string, string] {
  const at = value.indexOf(placeholder)
  // The placeholders hold control characters that no validated source can contain.
  if (at === -1 || value.indexOf(placeholder, at + 1) !== -1) throw new Error('securityHeaders: the nonce placeholder is not in the policy exactly once')
  return [value.slice(0, at), value.slice(at + placeholder.length)]
}

/** Names of every header helmet may set, to take them off a raw response again. @internal */
export const helmetHeaderNames = [
  'content-security-policy', 'content-security-policy-report-only', 'cross-origin-embedder-policy',
  'cross-origin-opener-policy', 'cross-origin-resource-policy', 'origin-agent-cluster', 'referrer-policy',
  'x-content-type-options', 'x-dns-prefetch-control', 'x-download-options', 'x-frame-options',
  'x-permitted-cross-domain-policies', 'x-xss-protection'
] as const

/**
 * Whether an answer with this Content-Type gets the API set. Reads the media type in place: no
 * regular expression, no allocation. `auto` routes: JSON (application/json and any +json type) only;
 * routes declared API: also no Content-Type and a few inert types. Anything else, an upper-case or
 * malformed type included, gets helmet's full set: HTML never gets the short one. @internal
 */
export function isApiAnswer (type: unknown, declaredApi: boolean): boolean {
  if (typeof type !== 'string') return declaredApi && type === undefined
  let end = type.indexOf(';')
  if (end === -1) end = type.length
  while (end > 0 && (type.charCodeAt(end - 1) === 32 || type.charCodeAt(end - 1) === 9)) end--
  if (end === 16) return type.startsWith('application/json')
  if (end > 17 && type.startsWith('application/') && type.endsWith('+json', end)) return restrictedName(type, 12, end - 5)
  if (!declaredApi) return false
  switch (end) {
    case 8: return type.startsWith('text/csv')
    case 10: return type.startsWith('text/plain')
    case 17: return type.startsWith('text/event-stream')
    case 20: return type.startsWith('application/x-ndjson')
    case 24: return type.startsWith('application/octet-stream')
    default: return false
  }
}

/**
 * `isApiAnswer` with the last string judged remembered, for each of the two route kinds it takes:
 * an app's answers carry a few Content-Type strings over and over (Fastify's JSON answers one
 * constant), so the answer is mostly a comparison of that string with the last. The same results
 * as `isApiAnswer` for any sequence of calls. @internal
 */
export function rememberingApiAnswer (): (type: unknown, declaredApi: boolean) => boolean {
  // Slot 0 for `auto` routes, 1 for routes declared API.
  const types: Array<string | null> = [null, null]
  const answers = [false, false]
  return function apiAnswer (type, declaredApi) {
    if (typeof type !== 'string') return isApiAnswer(type, declaredApi)
    const slot = declaredApi ? 1 : 0
    if (type !== types[slot]) {
      answers[slot] = isApiAnswer(type, declaredApi)
      types[slot] = type
    }
    return answers[slot] as boolean
  }
}

/** RFC 6838 restricted-name characters, lower case only. */
function restrictedName (type: string, from: number, to: number): boolean {
  if (to <= from) return false
  for (let i = from; i < to; i++) {
    const c = type.charCodeAt(i)
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 33 || c === 35 || c === 36 || c === 38 || c === 43 || c === 45 || c === 46 || c === 94 || c === 95
    if (!ok) return false
  }
  return true
}

/** True for a JSON media type name (a route schema's content type). @internal */
export function isJsonType (type: string): boolean {
  const lower = type.toLowerCase()
  return isApiAnswer(lower, false)
}
