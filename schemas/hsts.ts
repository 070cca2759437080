/**
 * Options of the `hsts` plugin (RFC 6797 Strict-Transport-Security).
 */
import { z } from 'zod'
import { secondsSchema } from './common.ts'

/** One year: the minimum max-age for the HSTS preload list. */
export const PRELOAD_MIN_MAX_AGE = 31536000

/** Options of the `hsts` plugin. */
export const hstsSchema = z.strictObject({
  /** Seconds the browser remembers to use HTTPS only; 0 tells browsers to forget the policy (the way to undo a mistake). */
  maxAge: secondsSchema('maxAge').default(PRELOAD_MIN_MAX_AGE),
  includeSubDomains: z.boolean().default(false),
  preload: z.boolean().default(false),
  /** Send the header to localhost, 127.0.0.0/8 and ::1 too. Off: a year-long policy on localhost breaks every other local project. */
  localhost: z.boolean().default(false),
  /** Whether an HTTP to HTTPS redirect is active on the same host (a preload requirement). Filled in by the aggregate. */
  redirect: z.boolean().default(true),
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  if (!value.preload) return
  if (value.maxAge < PRELOAD_MIN_MAX_AGE) {
    ctx.addIssue({ code: 'custom', path: ['preload'], message: `preload requires HSTS_MAX_AGE >= ${PRELOAD_MIN_MAX_AGE} (got ${value.maxAge}); raise max-age to one year or turn preload off` })
  }
  if (!value.includeSubDomains) {
    ctx.addIssue({ code: 'custom', path: ['preload'], message: 'preload requires HSTS_INCLUDE_SUBDOMAINS=true: the preload list applies to every subdomain; make sure they all serve HTTPS, then turn it on' })
  }
  if (!value.redirect) {
    ctx.addIssue({ code: 'custom', path: ['preload'], message: 'preload requires an active HTTP to HTTPS redirect on the same host; enable httpsRedirect (HTTP_PORT) or turn preload off' })
  }
})

/** What a user passes to the `hsts` plugin. */
export type HstsOptions = z.input<typeof hstsSchema>
/** The resolved `hsts` options. */
export type HstsConfig = z.output<typeof hstsSchema>

/** The header value for the resolved options. @internal */
export function hstsHeaderValue (config: Pick<HstsConfig, 'maxAge' | 'includeSubDomains' | 'preload'>): string {
  let value = `max-age=${config.maxAge}`
  if (config.includeSubDomains) value += '; includeSubDomains'
  if (config.preload) value += '; preload'
  return value
}

/** Warnings (not errors) about the resolved options. @internal */
export function hstsWarnings (config: HstsConfig): string[] {
  const warnings: string[] = []
  if (config.maxAge > 2 * PRELOAD_MIN_MAX_AGE) {
    warnings.push(`HSTS_MAX_AGE ${config.maxAge} is over two years; browsers cap it and a mistake lasts that long; 31536000 (one year) is the usual value`)
  }
  if (config.production && config.maxAge > 0 && config.maxAge < 300) {
    warnings.push(`HSTS_MAX_AGE ${config.maxAge} is under 300 seconds and protects almost nothing; use 31536000 once HTTPS works everywhere`)
  }
  if (config.production && config.maxAge === 0) {
    warnings.push('HSTS is off (HSTS_MAX_AGE=0); browsers can be downgraded to HTTP on first contact; set HSTS_MAX_AGE=31536000')
  }
  return warnings
}
