/**
 * Options of the `crossSite` plugin: tokenless protection against cross-site requests, the way
 * Go 1.25's net/http.CrossOriginProtection, Rails and Django check a browser's request.
 */
import { z } from 'zod'

/** A serialized origin, `scheme://host[:port]`, lower-cased, without default port or trailing slash. @internal */
export function normalizeOrigin (value: string): string | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return null
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || (url.pathname !== '/' && url.pathname !== '')) return null
  if (/[?#]/.test(value)) return null
  // URL serializes an origin without the default port and in lower case: the browser's form.
  return url.origin.toLowerCase()
}

const originSchema = z.string({ error: 'must be an origin such as https://app.example.com' }).transform((value, ctx) => {
  const origin = normalizeOrigin(value.trim())
  if (origin === null) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not an origin; write scheme://host[:port] with no path, e.g. https://app.example.com or https://partner.example:8443` })
    return z.NEVER
  }
  return origin
})

/** Options of the `crossSite` plugin. */
export const crossSiteSchema = z.strictObject({
  /**
   * Origins (besides the request's own) whose pages may send unsafe requests (POST, PUT, PATCH,
   * DELETE, ...): e.g. a front end on another name (CROSS_SITE_TRUSTED_ORIGINS).
   */
  trustedOrigins: z.array(originSchema, { error: 'must be a list of origins, e.g. https://app.example.com' }).default([]),
  /** Most `csrf.rejected` events logged per minute; the rest are counted and the count logged with the next one. */
  eventsPerMinute: z.number().int().min(0).default(10)
})

/** What a user passes to the `crossSite` plugin. */
export type CrossSiteOptions = z.input<typeof crossSiteSchema>
/** The resolved `crossSite` options. */
export type CrossSiteConfig = z.output<typeof crossSiteSchema>
