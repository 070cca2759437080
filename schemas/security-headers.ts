/**
 * Options of the `securityHeaders` plugin: @fastify/helmet, tightened for an HTTPS app.
 */
import { z } from 'zod'

const toggle = (name: string) => z.union([z.boolean(), z.looseObject({})], { error: `${name} must be true, false or helmet's options object for it` })

/** Directive values of Content-Security-Policy. */
const cspDirectives = z.record(
  z.string().regex(/^[a-zA-Z-]+$/, { error: 'a CSP directive name is letters and dashes, e.g. script-src or scriptSrc' }),
  z.union([z.null(), z.boolean(), z.string(), z.array(z.string())])
)

/** Options of the `securityHeaders` plugin (helmet's options, minus HSTS, which the `hsts` plugin owns). */
export const securityHeadersSchema = z.strictObject({
  contentSecurityPolicy: z.union([z.boolean(), z.looseObject({
    useDefaults: z.boolean().optional(),
    directives: cspDirectives.optional(),
    reportOnly: z.boolean().optional()
  })]).default(true),
  /** Per-request CSP nonces (`reply.cspNonce`); costs a random value and a header per request. */
  enableCSPNonces: z.boolean().default(false),
  crossOriginEmbedderPolicy: toggle('crossOriginEmbedderPolicy').default(false),
  crossOriginOpenerPolicy: toggle('crossOriginOpenerPolicy').default(true),
  crossOriginResourcePolicy: toggle('crossOriginResourcePolicy').default(true),
  originAgentCluster: z.boolean().default(true),
  referrerPolicy: toggle('referrerPolicy').default(true),
  xContentTypeOptions: z.boolean().default(true),
  xDnsPrefetchControl: toggle('xDnsPrefetchControl').default(true),
  xDownloadOptions: z.boolean().default(true),
  xFrameOptions: toggle('xFrameOptions').default(true),
  xPermittedCrossDomainPolicies: toggle('xPermittedCrossDomainPolicies').default(true),
  xPoweredBy: z.boolean().default(true),
  xXssProtection: z.boolean().default(true),
  strictTransportSecurity: z.literal(false, { error: 'HSTS belongs to the hsts plugin (HSTS_MAX_AGE and friends), which sends it only over HTTPS; remove it here' }).optional(),
  hsts: z.literal(false, { error: 'HSTS belongs to the hsts plugin (HSTS_MAX_AGE and friends), which sends it only over HTTPS; remove it here' }).optional()
})

/** What a user passes to the `securityHeaders` plugin. */
export type SecurityHeadersOptions = z.input<typeof securityHeadersSchema>
/** The resolved `securityHeaders` options. */
export type SecurityHeadersConfig = z.output<typeof securityHeadersSchema>
