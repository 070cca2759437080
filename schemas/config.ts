/**
 * The root configuration: every plugin's options in one object, with defaults that depend on the
 * mode (development or production) and on each other (the redirect points at the HTTPS port, the
 * certificate covers the allowed hosts, TLS at a proxy requires proxy trust).
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import { ConfigError } from '../errors.ts'
import { issueMessage, portSchema, toConfigIssues } from './common.ts'
import { crossSiteSchema, type CrossSiteOptions } from './cross-site.ts'
import { errorHandlerSchema, type ErrorHandlerOptions } from './error-handler.ts'
import { allowedHostsSchema, exactHosts, hostAuthorizationSchema, parseHost, type HostAuthorizationOptions } from './host-authorization.ts'
import { hstsSchema, type HstsOptions } from './hsts.ts'
import { metricsSchema, type MetricsOptions } from './metrics.ts'
import { httpsRedirectSchema, type HttpsRedirectOptions } from './https-redirect.ts'
import { listenerSchema, type ListenerOptions } from './listener.ts'
import { proxyTrustSchema, type ProxyTrustOptions } from './proxy-trust.ts'
import { peerOnlyIssues, secureSessionSchema, type SecureSessionOptions } from './secure-session.ts'
import { securityHeadersSchema, type SecurityHeadersOptions } from './security-headers.ts'
import { tlsModes, tlsSchema, type TlsMode, type TlsOptions } from './tls.ts'

const section = <T>(name: string) => z.custom<T | false>(
  (value) => value === false || (typeof value === 'object' && value !== null && !Array.isArray(value)),
  { error: `${name} must be false or an options object` }
)

const typed = <T>() => z.custom<T>(() => true)

/**
 * The options object of `secureHttps` (also what `loadConfig` produces). Only the shape is checked
 * here; each field is validated in `resolve`, so that a bad field does not hide the problems of the
 * others: every problem is reported at once.
 */
const configInputSchema = z.strictObject({
  /** Production rules on (NODE_ENV=production). */
  production: z.boolean({ error: 'must be true or false' }).default(false),
  /** Listen address of the app. */
  host: typed<string>().optional(),
  /** Port of the app: HTTPS, or plain HTTP when TLS is at a proxy or off. */
  port: typed<number>().optional(),
  /** Host names the app answers for (`*.example.com` for subdomains); redirects only go to these. */
  allowedHosts: typed<readonly string[]>().optional(),
  /** Requests for other hosts are refused (400); `false` turns it off. */
  hostAuthorization: section<HostAuthorizationOptions>('hostAuthorization').optional(),
  /** Unsafe requests sent by other sites' pages are refused (403); `false` turns it off. */
  crossSite: section<CrossSiteOptions>('crossSite').optional(),
  tls: section<TlsOptions>('tls').optional(),
  /** Timeouts and connection cap of the app's listener (applied by `serverOptions`). */
  listener: section<ListenerOptions>('listener').optional(),
  httpsRedirect: section<HttpsRedirectOptions>('httpsRedirect').optional(),
  proxyTrust: section<ProxyTrustOptions>('proxyTrust').optional(),
  hsts: section<HstsOptions>('hsts').optional(),
  securityHeaders: section<SecurityHeadersOptions>('securityHeaders').optional(),
  secureSession: section<SecureSessionOptions>('secureSession').optional(),
  errorHandler: z.union([z.boolean(), section<ErrorHandlerOptions>('errorHandler')]).optional(),
  /** Prometheus metrics on their own listener (METRICS=true); off unless asked for. */
  metrics: z.union([z.boolean(), section<MetricsOptions>('metrics')]).optional()
})

const LISTEN_ADDRESS = 'must be an address to listen on: an IP address (0.0.0.0 for every interface, 127.0.0.1, ::) or a host name of this machine such as localhost'
/** HOST: an IP address (IPv6 without brackets, as `listen()` takes it) or a host name without port. */
const hostSchema = z.string({ error: LISTEN_ADDRESS }).refine((value) => isIP(value) !== 0 || (!value.includes(':') && parseHost(value) !== null), {
  error: (issue) => `"${String(issue.input).slice(0, 100)}" ${LISTEN_ADDRESS}`
})

function parseField<S extends z.ZodType> (schema: S, value: unknown, name: string, ctx: z.RefinementCtx): z.output<S> | undefined {
  if (value === undefined) return undefined
  const result = schema.safeParse(value)
  if (result.success) return result.data
  for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', path: [name, ...issue.path], message: issueMessage(issue) })
  return undefined
}

const IN_PROCESS: ReadonlySet<TlsMode> = new Set(['self-signed', 'files', 'acme'])

/** Parses a section, reporting its problems under its name; those about the option `skip` are left out. */
function parseSection<S extends z.ZodType> (schema: S, value: unknown, name: string, ctx: z.RefinementCtx, skip?: string): z.output<S> | undefined {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  for (const issue of result.error.issues) {
    if (skip !== undefined && issue.path[0] === skip) continue
    ctx.addIssue({ code: 'custom', path: [name, ...issue.path], message: issueMessage(issue) })
  }
  return undefined
}

function objectOr<T> (value: T | false | undefined): T | Record<string, never> {
  return value === undefined || value === false ? {} : value
}

/**
 * The production flag a section is checked with: the root's, or the section's own `true`. A
 * section's `production: false` cannot lift the production rules that the root (NODE_ENV) turned on.
 */
function sectionProduction (production: boolean, section: unknown): boolean {
  return production || (typeof section === 'object' && section !== null && (section as { production?: unknown }).production === true)
}

function resolve (input: z.output<typeof configInputSchema>, ctx: z.RefinementCtx) {
  const { production } = input
  const tlsInput = input.tls === false ? { mode: 'off' as const } : objectOr(input.tls)
  // tls: false is TLS_MODE=off (plain HTTP, cookies without Secure), which the tls section refuses
  // in production; that section is not parsed here, so the rule is applied here.
  if (input.tls === false && production) {
    ctx.addIssue({ code: 'custom', path: ['tls'], message: 'plain HTTP is refused in production (tls: false is TLS_MODE=off); use files, acme, or proxy when TLS ends at a load balancer' })
  }
  // An invalid mode is reported by the tls section; the others resolve as if it were the default.
  let mode = tlsInput.mode !== undefined && (tlsModes as readonly string[]).includes(tlsInput.mode) ? tlsInput.mode : undefined
  if (mode === undefined) {
    if (production && tlsInput.mode === undefined) {
      ctx.addIssue({ code: 'custom', path: ['tls', 'mode'], message: 'is required in production; choose files (certificate files), acme (Let\'s Encrypt) or proxy (TLS ends at nginx/haproxy)' })
    }
    mode = production ? 'files' : 'self-signed'
  }
  // Without a mode in production, TLS_MODE is reported above; the tls section is checked without
  // the requirements of a mode nobody chose (no "TLS_CERT_FILE is required" for an empty environment).
  const sectionMode = tlsInput.mode ?? (production ? 'proxy' : mode)
  const inProcess = IN_PROCESS.has(mode)
  const host = parseField(hostSchema, input.host, 'host', ctx) ?? (production ? '0.0.0.0' : '127.0.0.1')
  const port = parseField(portSchema, input.port, 'port', ctx) ?? (inProcess ? (production ? 443 : 8443) : 3000)
  const parsedHosts = parseField(allowedHostsSchema, input.allowedHosts, 'allowedHosts', ctx)
  const allowedHosts = parsedHosts ?? (production ? [] : ['localhost', '127.0.0.1', '::1'])
  // Given and refused (reported above): the sections that read the list say nothing of it, or its
  // problem would come with "is required" and "is empty" (and loadConfig keeps only "is required").
  const hostsRefused = input.allowedHosts !== undefined && parsedHosts === undefined ? 'allowedHosts' : undefined

  // The certificate must cover the names the user set; the development defaults (localhost,
  // 127.0.0.1, ::1) are the development certificate's own, and no one's requirement of another.
  const certificateHosts = input.allowedHosts === undefined ? [] : allowedHosts
  const tls = input.tls === false
    ? false
    : parseSection(tlsSchema, { hosts: exactHosts(certificateHosts), ...tlsInput, production: sectionProduction(production, tlsInput), mode: sectionMode }, 'tls', ctx, hostsRefused === undefined ? undefined : 'hosts')

  let httpsRedirect: z.output<typeof httpsRedirectSchema> | false | undefined = false
  const redirectWanted = input.httpsRedirect !== false && (inProcess || mode === 'proxy')
  if (redirectWanted) {
    httpsRedirect = parseSection(httpsRedirectSchema, {
      mode: inProcess ? 'listener' : 'hook',
      port: production ? 80 : 8080,
      host,
      httpsPort: inProcess ? port : 443,
      allowedHosts,
      production,
      ...objectOr(input.httpsRedirect)
    }, 'httpsRedirect', ctx, hostsRefused)
    // Caught here rather than as EADDRINUSE once the app has started, with nothing answering plain HTTP.
    if (httpsRedirect !== undefined && httpsRedirect.mode === 'listener' && httpsRedirect.port !== 0 && httpsRedirect.port === port && httpsRedirect.host === host) {
      ctx.addIssue({ code: 'custom', path: ['httpsRedirect', 'port'], message: `is ${port}, the port of the app (PORT) on the same address: the HTTP redirect listener needs a port of its own; use e.g. 8080, or HTTP_PORT=off` })
    }
  }

  let proxyTrust: z.output<typeof proxyTrustSchema> | false | undefined = false
  if (input.proxyTrust === false) {
    if (mode === 'proxy') {
      ctx.addIssue({ code: 'custom', path: ['proxyTrust', 'trust'], message: 'is required with TLS_MODE=proxy: without it every request looks like plain HTTP and redirects forever; set TRUST_PROXY to the proxy\'s address, e.g. 127.0.0.1' })
    }
  } else {
    proxyTrust = parseSection(proxyTrustSchema, { required: mode === 'proxy', ...objectOr(input.proxyTrust), production: sectionProduction(production, input.proxyTrust) }, 'proxyTrust', ctx)
  }

  const listener = input.listener === false
    ? false
    : parseSection(listenerSchema, objectOr(input.listener), 'listener', ctx)

  const hostAuthorization = input.hostAuthorization === false
    ? false
    : parseSection(hostAuthorizationSchema, {
      allowedHosts,
      ...(httpsRedirect === false || httpsRedirect === undefined ? {} : { exempt: httpsRedirect.exempt }),
      ...objectOr(input.hostAuthorization),
      production: sectionProduction(production, input.hostAuthorization)
    }, 'hostAuthorization', ctx, hostsRefused)

  const crossSite = input.crossSite === false
    ? false
    : parseSection(crossSiteSchema, objectOr(input.crossSite), 'crossSite', ctx)

  const hsts = input.hsts === false
    ? false
    : parseSection(hstsSchema, { redirect: redirectWanted, production, ...objectOr(input.hsts) }, 'hsts', ctx)

  const securityHeaders = input.securityHeaders === false
    ? false
    : parseSection(securityHeadersSchema, { upgradeInsecureRequests: mode !== 'off', ...objectOr(input.securityHeaders) }, 'securityHeaders', ctx)

  // @fastify/secure-session's options that the suite does not take, named with the way forward.
  const peerOnly = input.secureSession === false || input.secureSession === undefined ? [] : peerOnlyIssues(input.secureSession)
  for (const issue of peerOnly) ctx.addIssue({ code: 'custom', path: ['secureSession', ...issue.path], message: issue.message })
  const secureSession = input.secureSession === false
    ? false
    : peerOnly.length > 0
      ? undefined
      : parseSection(secureSessionSchema, { secure: mode !== 'off' || production, ...objectOr(input.secureSession), production: sectionProduction(production, input.secureSession) }, 'secureSession', ctx)

  const errorHandlerInput = input.errorHandler ?? production
  const errorHandler = errorHandlerInput === false
    ? false
    : parseSection(errorHandlerSchema, errorHandlerInput === true ? {} : errorHandlerInput, 'errorHandler', ctx)

  const metricsInput = input.metrics ?? false
  const appPorts = [port, ...(httpsRedirect !== undefined && httpsRedirect !== false && httpsRedirect.mode === 'listener' ? [httpsRedirect.port] : [])]
  const metrics = metricsInput === false
    ? false
    : parseSection(metricsSchema, { appPorts, ...(metricsInput === true ? {} : metricsInput), production: sectionProduction(production, metricsInput) }, 'metrics', ctx)

  if (tls === undefined || listener === undefined || httpsRedirect === undefined || proxyTrust === undefined || hostAuthorization === undefined || crossSite === undefined || hsts === undefined ||
    securityHeaders === undefined || secureSession === undefined || errorHandler === undefined || metrics === undefined) {
    return z.NEVER
  }
  return Object.freeze({
    production,
    host,
    port,
    allowedHosts: Object.freeze(allowedHosts.slice()),
    tls: tls === false ? false as const : Object.freeze(tls),
    listener: listener === false ? false as const : Object.freeze(listener),
    httpsRedirect: httpsRedirect === false ? false as const : Object.freeze(httpsRedirect),
    proxyTrust: proxyTrust === false ? false as const : Object.freeze(proxyTrust),
    hostAuthorization: hostAuthorization === false ? false as const : Object.freeze(hostAuthorization),
    crossSite: crossSite === false ? false as const : Object.freeze(crossSite),
    hsts: hsts === false ? false as const : Object.freeze(hsts),
    securityHeaders: securityHeaders === false ? false as const : Object.freeze(securityHeaders),
    secureSession: secureSession === false ? false as const : Object.freeze(secureSession),
    errorHandler: errorHandler === false ? false as const : Object.freeze(errorHandler),
    metrics: metrics === false ? false as const : Object.freeze(metrics)
  })
}

/**
 * The root schema. Its input is `SecureHttpsOptions`, its output the resolved, frozen
 * `SecureHttpsConfig`. Parsing an already resolved config again gives the same config.
 */
export const configSchema = configInputSchema.transform(resolve)

/** The options `secureHttps` accepts. */
export type SecureHttpsOptions = z.input<typeof configSchema>
/** The resolved configuration: every section filled in, or `false` when turned off. */
export type SecureHttpsConfig = z.output<typeof configSchema>

/**
 * Validates options and resolves defaults; throws one ConfigError listing every problem.
 * `variableOf` names the environment variable behind a path, for `loadConfig`.
 */
export function resolveConfig (options: unknown, variableOf?: (path: string) => string | undefined): SecureHttpsConfig {
  const result = configSchema.safeParse(options ?? {})
  if (result.success) return result.data
  throw new ConfigError(toConfigIssues(result.error.issues, [], variableOf))
}
