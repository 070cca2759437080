/**
 * The session's `Set-Cookie` lines, built from a prefix and an attribute suffix computed once.
 * Byte for byte what @fastify/cookie's `reply.setCookie` writes for the same options (value
 * percent-encoded with encodeURIComponent, attributes in cookie@2's order), without its per-call
 * option copies and validation regexes, which cost more than the sealing. Pure: no Fastify.
 */

/** The attributes the session cookie is written with. */
export interface SessionCookieAttributes {
  domain?: string | undefined
  secure: boolean
  sameSite: 'lax' | 'strict' | 'none'
}

/** The options object @fastify/secure-session passes to `reply.setCookie` (its `cookie` option). */
export interface SessionCookieOptions {
  path: '/'
  httpOnly: true
  secure: boolean
  sameSite: 'lax' | 'strict' | 'none'
  domain?: string
  maxAge: number
}

const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const

/** Writes and expires the session cookie. */
export interface SessionCookieWriter {
  /** `name=value; Max-Age=N; ...` for a value already percent-encoded (`encodeURIComponent`). */
  line (encoded: string, maxAge: number): string
  /** The line that makes browsers drop the cookie (what `reply.clearCookie` writes). */
  readonly expired: string
  /** The same attributes as an options object, for @fastify/secure-session and `reply.setCookie`. */
  options (maxAge: number): SessionCookieOptions
}

/** The writer for one cookie name and its attributes. */
export function sessionCookieWriter (name: string, attributes: SessionCookieAttributes): SessionCookieWriter {
  const domain = attributes.domain === undefined ? '' : `; Domain=${attributes.domain}`
  const flags = `; HttpOnly${attributes.secure ? '; Secure' : ''}; SameSite=${SAME_SITE[attributes.sameSite]}`
  const prefix = `${name}=`
  const suffix = `${domain}; Path=/${flags}`
  const expired = `${name}=; Max-Age=0${domain}; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT${flags}`
  return {
    line (encoded, maxAge) {
      return prefix + encoded + '; Max-Age=' + maxAge + suffix
    },
    expired,
    options (maxAge) {
      const options: SessionCookieOptions = { path: '/', httpOnly: true, secure: attributes.secure, sameSite: attributes.sameSite, maxAge }
      if (attributes.domain !== undefined) options.domain = attributes.domain
      return options
    }
  }
}
