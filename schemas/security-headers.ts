/**
 * Options of the `securityHeaders` plugin: @fastify/helmet's options under helmet's names and their
 * older aliases (`frameguard`, `noSniff`, ...), its `global` and `enableCSPNonces`, and the suite's
 * additions: `permissionsPolicy`, `responseKind` and `upgradeInsecureRequests`. HSTS belongs to the
 * `hsts` plugin. The same fields, without defaults, are a route's `helmet` option.
 *
 * Pure validation: no Fastify, no I/O. Everything is checked in time linear in its length.
 */
import helmet from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { z } from 'zod'
import { issueMessage } from './common.ts'

/** A CSP source computed per request, as helmet allows (`(req, res) => "'nonce-...'"`). */
export type DirectiveFunction = (req: IncomingMessage, res: ServerResponse) => string

/** helmet's marker for a policy without default-src. */
const dangerouslyDisableDefaultSrc = helmet.contentSecurityPolicy.dangerouslyDisableDefaultSrc

/**
 * CSP directives browsers know (CSP Level 3, with the deprecated ones that are still sent). An
 * unknown name is refused: a misspelt `scirpt-src` would otherwise be ignored by browsers, leaving
 * scripts to default-src without a word.
 */
export const cspDirectiveNames: ReadonlySet<string> = new Set([
  'default-src', 'script-src', 'script-src-elem', 'script-src-attr', 'style-src', 'style-src-elem',
  'style-src-attr', 'img-src', 'font-src', 'connect-src', 'media-src', 'object-src', 'frame-src',
  'child-src', 'worker-src', 'manifest-src', 'fenced-frame-src', 'prefetch-src', 'base-uri',
  'form-action', 'frame-ancestors', 'navigate-to', 'sandbox', 'report-uri', 'report-to',
  'require-trusted-types-for', 'trusted-types', 'upgrade-insecure-requests',
  'block-all-mixed-content', 'webrtc', 'plugin-types', 'require-sri-for'
])

/**
 * Policy-controlled features of Permissions-Policy (W3C's features list: standardized, proposed and
 * experimental). `ch-*` client hints are accepted by pattern.
 */
export const permissionsPolicyFeatures: ReadonlySet<string> = new Set([
  'accelerometer', 'all-screens-capture', 'ambient-light-sensor', 'attribution-reporting', 'autofill',
  'autoplay', 'battery', 'bluetooth', 'browsing-topics', 'camera', 'captured-surface-control',
  'clipboard-read', 'clipboard-write', 'compute-pressure', 'controlled-frame', 'cross-origin-isolated',
  'deferred-fetch', 'deferred-fetch-minimal', 'digital-credentials-get', 'direct-sockets',
  'display-capture', 'document-domain', 'encrypted-media', 'execution-while-not-rendered',
  'execution-while-out-of-viewport', 'focus-without-user-activation', 'fullscreen', 'gamepad',
  'geolocation', 'gyroscope', 'hid', 'identity-credentials-get', 'idle-detection', 'interest-cohort',
  'join-ad-interest-group', 'keyboard-map', 'language-detector', 'local-fonts', 'local-network-access',
  'magnetometer', 'media-playback-while-not-visible', 'microphone', 'midi', 'navigation-override',
  'on-device-speech-recognition', 'otp-credentials', 'payment', 'picture-in-picture', 'popins',
  'private-aggregation', 'private-state-token-issuance', 'private-state-token-redemption',
  'publickey-credentials-create', 'publickey-credentials-get', 'rewriter', 'run-ad-auction',
  'screen-wake-lock', 'serial', 'shared-autofill', 'shared-storage', 'shared-storage-select-url',
  'smart-card', 'speaker-selection', 'storage-access', 'summarizer', 'sync-script', 'sync-xhr',
  'translator', 'trust-token-redemption', 'unload', 'usb', 'vertical-scroll', 'vibrate', 'web-printing',
  'web-share', 'window-management', 'writer', 'xr-spatial-tracking'
])

const PRINTABLE = /^[\x20-\x7e]*$/
const CLIENT_HINT = /^ch-[a-z0-9]+(?:-[a-z0-9]+)*$/
const ORIGIN = /^https?:\/\/(?:\*\.)?(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/
const HELMET_DIRECTIVE_NAME = /^[a-z](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/

const dashify = (name: string): string => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)

const isObject = (value: unknown): value is object => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * A union that validates with the branch the value's type selects and reports that branch's own
 * problems (zod's union would say "invalid input" for a misspelt directive inside an object).
 */
function byType<In, Out> (select: (value: unknown) => z.ZodType | undefined, message: string) {
  return z.custom<In>(() => true).transform((value, ctx): Out => {
    const schema = select(value)
    if (schema === undefined) {
      ctx.addIssue({ code: 'custom', message })
      return z.NEVER
    }
    const result = schema.safeParse(value)
    if (result.success) return result.data as Out
    for (const issue of result.error.issues) {
      // A record's key problem comes wrapped: report the key's own message.
      const message = issue.code === 'invalid_key' ? issue.issues[0]?.message ?? issue.message : issueMessage(issue)
      ctx.addIssue({ code: 'custom', path: issue.path, message })
    }
    return z.NEVER
  })
}

/** `true`, `false`, or helmet's options object for that header. */
function booleanOr<S extends z.ZodType> (object: S, message: string) {
  return byType<boolean | z.input<S>, boolean | z.output<S>>((value) => typeof value === 'boolean' ? z.boolean() : isObject(value) ? object : undefined, message)
}

/** A directive as helmet takes it, after validation: its sources, `null` (left out) or helmet's marker. */
export type DirectiveValue = Array<string | DirectiveFunction> | null | typeof dangerouslyDisableDefaultSrc
/** Directives by their dashed names. */
export type Directives = Record<string, DirectiveValue>

function sourceProblem (source: string): string | undefined {
  if (!PRINTABLE.test(source)) return 'holds a character that is not printable ASCII (line breaks and non-ASCII letters cannot go into a header); percent-encode URLs'
  if (source.includes(';') || source.includes(',')) return 'holds ";" or ","; give each source as its own array entry and each directive as its own key'
  if (source.trim() === '') return 'is empty; remove it'
  return undefined
}

const directiveValueSchema = z.custom<null | string | Iterable<string | DirectiveFunction> | typeof dangerouslyDisableDefaultSrc>(
  (value) => value === null || typeof value === 'string' || value === dangerouslyDisableDefaultSrc ||
    (typeof value === 'object' && Symbol.iterator in value),
  { error: 'a CSP directive is a list of sources (["\'self\'", "https://cdn.example"]), a string, or null to leave it out' }
)

/** CSP directives: helmet's camelCase or dashed names, known to browsers, each at most once. */
const directivesSchema = z.record(z.string(), directiveValueSchema).transform((raw, ctx): Directives => {
  const out: Directives = {}
  for (const rawName of Object.keys(raw)) {
    const path = [rawName]
    if (!HELMET_DIRECTIVE_NAME.test(rawName)) {
      ctx.addIssue({ code: 'custom', path, message: `"${rawName}" is not a CSP directive name; write it dashed (script-src) or in camelCase (scriptSrc)` })
      continue
    }
    const name = dashify(rawName)
    if (!cspDirectiveNames.has(name)) {
      ctx.addIssue({ code: 'custom', path, message: `"${name}" is not a CSP directive browsers know; check the spelling (default-src, script-src, style-src, img-src, connect-src, font-src, frame-ancestors, form-action, base-uri, ...)` })
      continue
    }
    if (name in out) {
      ctx.addIssue({ code: 'custom', path, message: `${name} is given twice (once dashed, once in camelCase); keep one` })
      continue
    }
    const value = raw[rawName]
    if (value === null || value === dangerouslyDisableDefaultSrc) {
      out[name] = value as null | typeof dangerouslyDisableDefaultSrc
      continue
    }
    const sources = typeof value === 'string' ? [value] : [...(value as Iterable<unknown>)]
    let valid = true
    for (const source of sources) {
      if (typeof source === 'function') continue
      const problem = typeof source === 'string' ? sourceProblem(source) : 'is neither a string nor a function'
      if (problem !== undefined) {
        ctx.addIssue({ code: 'custom', path, message: `${name}: the source ${JSON.stringify(String(source))} ${problem}` })
        valid = false
      }
    }
    if (valid) out[name] = sources as Array<string | DirectiveFunction>
  }
  return out
})

/**
 * A whole policy as text (`"default-src 'self'; img-src *"`), as Flask-Talisman takes it: parsed
 * into directives, and sent as written, without helmet's defaults.
 */
export function parsePolicyText (text: string): { directives: Directives } | { problem: string } {
  if (!PRINTABLE.test(text)) return { problem: 'holds a character that is not printable ASCII; a policy is one line of ASCII' }
  const directives: Directives = {}
  for (const part of text.split(';')) {
    const tokens = part.split(' ').filter((token) => token !== '')
    if (tokens.length === 0) continue
    const name = (tokens[0] as string).toLowerCase()
    if (!cspDirectiveNames.has(name)) return { problem: `"${tokens[0] as string}" is not a CSP directive browsers know; check the spelling` }
    if (name in directives) return { problem: `${name} is given twice; browsers would ignore the second` }
    for (const source of tokens.slice(1)) {
      if (source.includes(',')) return { problem: `${name}: the source "${source}" holds ","; separate sources with spaces` }
    }
    directives[name] = tokens.slice(1)
  }
  if (Object.keys(directives).length === 0) return { problem: 'is empty; write directives such as "default-src \'self\'", or use false for no policy' }
  return { directives }
}

const cspObjectSchema = z.strictObject({
  useDefaults: z.boolean({ error: 'useDefaults must be true or false' }).optional(),
  directives: directivesSchema.optional(),
  reportOnly: z.boolean({ error: 'reportOnly must be true or false' }).optional()
})

/** The resolved Content-Security-Policy option: off, or helmet's options with dashed directive names. */
export type CspConfig = false | { useDefaults: boolean, directives: Directives, reportOnly: boolean }

const cspSchema = byType<boolean | string | z.input<typeof cspObjectSchema>, boolean | string | z.output<typeof cspObjectSchema>>(
  (value) => typeof value === 'boolean' || typeof value === 'string' ? z.union([z.boolean(), z.string()]) : isObject(value) ? cspObjectSchema : undefined,
  'contentSecurityPolicy must be true, false, a policy as text, or { useDefaults, directives, reportOnly }'
).transform((value, ctx): CspConfig => {
  if (value === false) return false
  if (value === true) return { useDefaults: true, directives: {}, reportOnly: false }
  if (typeof value === 'string') {
    const parsed = parsePolicyText(value)
    if ('problem' in parsed) {
      ctx.addIssue({ code: 'custom', message: `the policy text ${parsed.problem}` })
      return z.NEVER
    }
    return { useDefaults: false, directives: parsed.directives, reportOnly: false }
  }
  return { useDefaults: value.useDefaults ?? true, directives: value.directives ?? {}, reportOnly: value.reportOnly ?? false }
})

const policyOf = <const T extends readonly [string, ...string[]]>(header: string, policies: T) => booleanOr(
  z.strictObject({ policy: z.enum(policies, { error: `${header} takes one of ${policies.join(', ')}` }).optional() }),
  `must be true, false or { policy: ${policies.map((p) => `'${p}'`).join(' | ')} }`
)

const referrerTokens = ['no-referrer', 'no-referrer-when-downgrade', 'same-origin', 'origin', 'strict-origin',
  'origin-when-cross-origin', 'strict-origin-when-cross-origin', 'unsafe-url', ''] as const
type ReferrerToken = typeof referrerTokens[number]
const referrerToken = z.enum(referrerTokens, { error: `Referrer-Policy takes ${referrerTokens.filter(Boolean).join(', ')}` })
const referrerPolicySchema = booleanOr(z.strictObject({
  policy: byType<ReferrerToken | ReferrerToken[], ReferrerToken | ReferrerToken[]>((value) => typeof value === 'string'
    ? referrerToken
    : Array.isArray(value)
      ? z.array(referrerToken)
        .min(1, { error: 'Referrer-Policy needs at least one policy' })
        .refine((tokens) => new Set(tokens).size === tokens.length, { error: 'Referrer-Policy lists a policy twice' })
      : undefined, 'Referrer-Policy takes a policy or a list of them').optional()
}), 'must be true, false or { policy: \'strict-origin-when-cross-origin\' | ... }')

const frameActions = new Set(['DENY', 'SAMEORIGIN', 'SAME-ORIGIN'])
const xFrameOptionsSchema = booleanOr(z.strictObject({
  action: z.string({ error: 'X-Frame-Options takes deny or sameorigin' }).refine((action) => frameActions.has(action.toUpperCase()), {
    error: 'X-Frame-Options takes deny or sameorigin (ALLOW-FROM is obsolete: browsers ignore it; use the CSP frame-ancestors directive)'
  }).optional()
}), 'must be true, false or { action: \'deny\' | \'sameorigin\' }')

const bool = (what: string) => z.boolean({ error: `${what} must be true or false` })

/** An allowlist of Permissions-Policy: `'*'`, or a list of `self` and origins; `[]` allows nothing. */
const allowlistSchema = z.union([z.string(), z.array(z.string())], {
  error: 'a Permissions-Policy allowlist is \'*\', or a list of self and origins such as ["self", "https://maps.example"]; [] allows none'
}).transform((value, ctx): '*' | string[] => {
  const entries = typeof value === 'string' ? [value] : value
  if (entries.length === 1 && entries[0] === '*') return '*'
  const seen = new Set<string>()
  for (const entry of entries) {
    const problem = allowlistEntryProblem(entry)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `"${entry}" ${problem}` })
    else if (seen.has(entry)) ctx.addIssue({ code: 'custom', message: `"${entry}" is listed twice` })
    seen.add(entry)
  }
  return entries.slice()
})

function allowlistEntryProblem (entry: string): string | undefined {
  if (entry === 'self') return undefined
  if (entry === '*') return 'stands alone: \'*\' allows every origin, so it is the whole allowlist (permissionsPolicy: { fullscreen: \'*\' })'
  if (entry === "'self'") return 'is quoted; write self without quotes (the quotes are CSP syntax)'
  if (entry === 'none' || entry === "'none'" || entry === '()') return 'is not an allowlist entry; give an empty list [] to allow no origin'
  if (entry === 'src') return 'only applies to an iframe\'s allow attribute, not to the header'
  if (!/^https?:\/\//.test(entry)) return 'is neither self nor an origin; write origins with their scheme: https://example.com'
  let url: URL
  try {
    url = new URL(entry.replace('://*.', '://wildcard.'))
  } catch {
    return 'is not a valid origin; write https://example.com or https://*.example.com'
  }
  const origin = url.origin.replace('://wildcard.', '://*.')
  if (origin !== entry) return `is not an origin as browsers write it; write ${origin} (scheme and host in lower case, no path, no default port)`
  // Only what an origin holds, so that nothing can close the quoted string it is sent in.
  if (!ORIGIN.test(entry)) return 'is not an origin; write a scheme, a host name and maybe a port: https://example.com, https://*.example.com:8443'
  return undefined
}

const featureName = z.string().refine((name) => permissionsPolicyFeatures.has(name) || CLIENT_HINT.test(name), {
  error: (issue) => `"${String(issue.input)}" is not a Permissions-Policy feature browsers know; check the spelling (camera, microphone, geolocation, fullscreen, payment, ...; names are dashed and lower case)`
})
const permissionsRecord = z.record(featureName, allowlistSchema)
const permissionsPolicySchema = byType<false | z.input<typeof permissionsRecord>, false | z.output<typeof permissionsRecord>>(
  (value) => value === false ? z.literal(false) : isObject(value) ? permissionsRecord : undefined,
  'permissionsPolicy must be false or { feature: allowlist }, e.g. { camera: [], fullscreen: [\'self\'] }'
)

/** The resolved Permissions-Policy option: off, or allowlists by feature. */
export type PermissionsPolicyConfig = z.output<typeof permissionsPolicySchema>

/**
 * Serializes Permissions-Policy as a Structured Field dictionary (RFC 8941): `camera=()`,
 * `fullscreen=*`, `geolocation=(self "https://maps.example")`, members joined by ", ".
 */
export function serializePermissionsPolicy (policy: Exclude<PermissionsPolicyConfig, false>): string {
  const members: string[] = []
  for (const [feature, allowlist] of Object.entries(policy)) {
    members.push(allowlist === '*'
      ? `${feature}=*`
      : `${feature}=(${allowlist.map((entry) => entry === 'self' ? 'self' : `"${entry}"`).join(' ')})`)
  }
  return members.join(', ')
}

const HSTS_MESSAGE = 'HSTS belongs to the hsts plugin (HSTS_MAX_AGE and friends), which sends it over HTTPS only; remove it here (false is accepted: on a route it leaves Strict-Transport-Security off that route\'s answers)'

/** helmet's options that have an older alias, with the header each sets. */
const ALIASES = [
  ['strictTransportSecurity', 'hsts', 'Strict-Transport-Security'],
  ['xContentTypeOptions', 'noSniff', 'X-Content-Type-Options'],
  ['xDnsPrefetchControl', 'dnsPrefetchControl', 'X-DNS-Prefetch-Control'],
  ['xDownloadOptions', 'ieNoOpen', 'X-Download-Options'],
  ['xFrameOptions', 'frameguard', 'X-Frame-Options'],
  ['xPermittedCrossDomainPolicies', 'permittedCrossDomainPolicies', 'X-Permitted-Cross-Domain-Policies'],
  ['xPoweredBy', 'hidePoweredBy', 'X-Powered-By'],
  ['xXssProtection', 'xssFilter', 'X-XSS-Protection']
] as const

const xDnsPrefetchControlSchema = booleanOr(z.strictObject({ allow: bool('allow').optional() }), 'must be true, false or { allow: boolean }')
const permittedPolicies = ['none', 'master-only', 'by-content-type', 'all'] as const
const xPermittedSchema = booleanOr(z.strictObject({
  permittedPolicies: z.enum(permittedPolicies, { error: `X-Permitted-Cross-Domain-Policies takes ${permittedPolicies.join(', ')}` }).optional()
}), 'must be true, false or { permittedPolicies: \'none\' | ... }')
const hstsOff = z.literal(false, { error: HSTS_MESSAGE })

/** The header options, each under helmet's name and, where it has one, its older alias. */
const headerFields = {
  contentSecurityPolicy: cspSchema.optional(),
  crossOriginEmbedderPolicy: policyOf('Cross-Origin-Embedder-Policy', ['require-corp', 'credentialless', 'unsafe-none']).optional(),
  crossOriginOpenerPolicy: policyOf('Cross-Origin-Opener-Policy', ['same-origin', 'same-origin-allow-popups', 'noopener-allow-popups', 'unsafe-none']).optional(),
  crossOriginResourcePolicy: policyOf('Cross-Origin-Resource-Policy', ['same-origin', 'same-site', 'cross-origin']).optional(),
  originAgentCluster: bool('originAgentCluster').optional(),
  referrerPolicy: referrerPolicySchema.optional(),
  strictTransportSecurity: hstsOff.optional(),
  hsts: hstsOff.optional(),
  xContentTypeOptions: bool('xContentTypeOptions').optional(),
  noSniff: bool('noSniff').optional(),
  xDnsPrefetchControl: xDnsPrefetchControlSchema.optional(),
  dnsPrefetchControl: xDnsPrefetchControlSchema.optional(),
  xDownloadOptions: bool('xDownloadOptions').optional(),
  ieNoOpen: bool('ieNoOpen').optional(),
  xFrameOptions: xFrameOptionsSchema.optional(),
  frameguard: xFrameOptionsSchema.optional(),
  xPermittedCrossDomainPolicies: xPermittedSchema.optional(),
  permittedCrossDomainPolicies: xPermittedSchema.optional(),
  xPoweredBy: bool('xPoweredBy').optional(),
  hidePoweredBy: bool('hidePoweredBy').optional(),
  xXssProtection: z.boolean({ error: 'xXssProtection must be true (sends X-XSS-Protection: 0) or false; "1; mode=block" is not offered: the XSS auditor it turned on leaked data and is gone from browsers' }).optional(),
  xssFilter: z.boolean({ error: 'xssFilter must be true (sends X-XSS-Protection: 0) or false' }).optional(),
  /** Per-request nonces in script-src and style-src, on `reply.cspNonce`. */
  enableCSPNonces: bool('enableCSPNonces').optional(),
  /** Permissions-Policy: which browser features the page and its frames may use. */
  permissionsPolicy: permissionsPolicySchema.optional()
}

type HeaderInput = z.output<z.ZodObject<typeof headerFields>>

/**
 * Refuses an option given under both of its names, as helmet does, naming both. Runs even when
 * other options are invalid (`when`), so that one run reports every problem; it only looks at
 * which names are present.
 */
function checkAliases (value: HeaderInput, ctx: z.RefinementCtx): void {
  if (!isObject(value)) return
  for (const [name, alias, header] of ALIASES) {
    if (value[name] !== undefined && value[alias] !== undefined) {
      ctx.addIssue({ code: 'custom', path: [alias], message: `${header} is set twice, as ${name} and as ${alias} (its older name); keep one` })
    }
  }
}

/** The header options under helmet's current names only; absent when not given. */
function modernNames (value: HeaderInput) {
  return {
    contentSecurityPolicy: value.contentSecurityPolicy,
    crossOriginEmbedderPolicy: value.crossOriginEmbedderPolicy,
    crossOriginOpenerPolicy: value.crossOriginOpenerPolicy,
    crossOriginResourcePolicy: value.crossOriginResourcePolicy,
    originAgentCluster: value.originAgentCluster,
    referrerPolicy: value.referrerPolicy,
    strictTransportSecurity: value.strictTransportSecurity ?? value.hsts,
    xContentTypeOptions: value.xContentTypeOptions ?? value.noSniff,
    xDnsPrefetchControl: value.xDnsPrefetchControl ?? value.dnsPrefetchControl,
    xDownloadOptions: value.xDownloadOptions ?? value.ieNoOpen,
    xFrameOptions: value.xFrameOptions ?? value.frameguard,
    xPermittedCrossDomainPolicies: value.xPermittedCrossDomainPolicies ?? value.permittedCrossDomainPolicies,
    xPoweredBy: value.xPoweredBy ?? value.hidePoweredBy,
    xXssProtection: value.xXssProtection ?? value.xssFilter,
    enableCSPNonces: value.enableCSPNonces,
    permissionsPolicy: value.permissionsPolicy
  }
}

/**
 * A route's `helmet` option (or `config.helmet`), and what `reply.helmet(options)` takes: the header
 * options without defaults. What it names replaces the plugin's option of the same name, as with
 * @fastify/helmet.
 */
export const securityHeadersRouteSchema = z.strictObject(headerFields, {
  error: 'a route\'s helmet option must be false or an options object such as { frameguard: false }'
}).superRefine(checkAliases, { when: () => true }).transform(modernNames)

/** What a route's `helmet` option takes. */
export type SecurityHeadersRouteOptions = z.input<typeof securityHeadersRouteSchema>
/** A route's `helmet` option, validated, under helmet's current names. */
export type SecurityHeadersRouteConfig = z.output<typeof securityHeadersRouteSchema>

/** Which header set an answer gets: helmet's full set (`html`) or the short API set (`api`). */
export const responseKinds = ['auto', 'html', 'api'] as const
/** `auto`: by the answer's Content-Type; `html` or `api`: that set (an HTML answer always gets the full set). */
export type ResponseKind = typeof responseKinds[number]

/** Options of the `securityHeaders` plugin (@fastify/helmet's, HSTS excepted, and the suite's). */
export const securityHeadersSchema = z.strictObject({
  ...headerFields,
  /** `false`: only routes with a `helmet` option get headers (`reply.helmet()` works everywhere). */
  global: bool('global').optional(),
  /** Which set answers get unless a route says otherwise (`config: { securityHeaders }`). */
  responseKind: z.enum(responseKinds, { error: 'responseKind must be auto (by Content-Type), html (helmet\'s full set everywhere) or api (the short set; HTML answers still get the full one)' }).optional(),
  /**
   * The CSP's upgrade-insecure-requests directive; the aggregate turns it off with TLS_MODE=off,
   * where it would send a browser to an https:// that does not answer.
   */
  upgradeInsecureRequests: bool('upgradeInsecureRequests').optional()
}).superRefine(checkAliases, { when: () => true }).transform((value) => {
  const named = modernNames(value)
  return {
    contentSecurityPolicy: named.contentSecurityPolicy ?? { useDefaults: true, directives: {}, reportOnly: false },
    crossOriginEmbedderPolicy: named.crossOriginEmbedderPolicy ?? false,
    crossOriginOpenerPolicy: named.crossOriginOpenerPolicy ?? true,
    crossOriginResourcePolicy: named.crossOriginResourcePolicy ?? true,
    originAgentCluster: named.originAgentCluster ?? true,
    referrerPolicy: named.referrerPolicy ?? true,
    xContentTypeOptions: named.xContentTypeOptions ?? true,
    xDnsPrefetchControl: named.xDnsPrefetchControl ?? true,
    xDownloadOptions: named.xDownloadOptions ?? true,
    xFrameOptions: named.xFrameOptions ?? true,
    xPermittedCrossDomainPolicies: named.xPermittedCrossDomainPolicies ?? true,
    xPoweredBy: named.xPoweredBy ?? true,
    xXssProtection: named.xXssProtection ?? true,
    enableCSPNonces: named.enableCSPNonces ?? false,
    permissionsPolicy: named.permissionsPolicy ?? false,
    global: value.global ?? true,
    responseKind: value.responseKind ?? 'auto',
    upgradeInsecureRequests: value.upgradeInsecureRequests ?? true
  }
})

/** What a user passes to the `securityHeaders` plugin. */
export type SecurityHeadersOptions = z.input<typeof securityHeadersSchema>
/** The resolved `securityHeaders` options. */
export type SecurityHeadersConfig = z.output<typeof securityHeadersSchema>
