/**
 * Options of the `httpsRedirect` plugin.
 */
import { z } from 'zod'
import { portSchema } from './common.ts'
import { allowedHostsSchema } from './host-authorization.ts'

/** Options of the `httpsRedirect` plugin. */
export const httpsRedirectSchema = z.strictObject({
  /**
   * `listener`: a plain HTTP server of its own on `port` that redirects (TLS in this process).
   * `hook`: an onRequest hook on the app itself redirects insecure requests (TLS at a proxy).
   */
  mode: z.enum(['listener', 'hook']).default('listener'),
  /** Port of the HTTP listener (mode `listener`). */
  port: portSchema.default(8080),
  /** Address the HTTP listener binds. */
  host: z.string().min(1).default('127.0.0.1'),
  /** Port of the HTTPS URL redirected to; 443 is left out of the URL. */
  httpsPort: portSchema.default(443),
  /** Host names a redirect may point to; any other Host header gets 400. */
  allowedHosts: allowedHostsSchema.default(['localhost']),
  /** Paths answered by the app instead of redirected, e.g. load-balancer probes. Exact match. */
  exempt: z.array(z.string().startsWith('/', { error: 'an exempt path must start with /' })).default(['/healthz']),
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  if (value.allowedHosts.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['allowedHosts'], message: 'is empty while the HTTPS redirect is on: every redirect would be refused; list the host names of the site, e.g. ALLOWED_HOSTS=example.com,www.example.com' })
  }
})

/** What a user passes to the `httpsRedirect` plugin. */
export type HttpsRedirectOptions = z.input<typeof httpsRedirectSchema>
/** The resolved `httpsRedirect` options. */
export type HttpsRedirectConfig = z.output<typeof httpsRedirectSchema>
