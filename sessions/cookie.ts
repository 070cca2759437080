/**
 * The session's `Set-Cookie` lines, built from a prefix and an attribute suffix computed once.
 * Byte for byte what @fastify/cookie's `reply.setCookie` writes for the same options (value
 * percent-encoded with encodeURIComponent, attributes in cookie@2's order), without its per-call
 * option copies and validation regexes, which cost more than the sealing. And the other way, the
 * decoder @fastify/cookie parses the `Cookie` header's values with (decodeCookieValue). Pure: no
 * Fastify.
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

/**
 * Decodes one cookie value of a `Cookie` header exactly as cookie@2's default decoder does, the one
 * @fastify/cookie parses with (`decodeURIComponent` when the value holds a `%`, the value as it is
 * when that throws), with one shortcut: a value whose only `%` is the `%3B` of a sealed session
 * cookie (`ciphertext%3Bnonce`, sessions/seal.ts) has it replaced by `;`. The decoder spends more on
 * such a value (UTF-8 decoding of every character, a new string) than opening it from the cache
 * does. Linear in the value's length. @internal
 */
export function decodeCookieValue (value: string): string {
  const at = value.indexOf('%')
  if (at === -1) return value
  // `3` then `B` or `b`, and no other escape after it (none before: `at` is the first).
  if (value.charCodeAt(at + 1) === 0x33 && (value.charCodeAt(at + 2) | 0x20) === 0x62 && value.indexOf('%', at + 3) === -1) {
    // Joined, not concatenated: one flat string, which the cache's lookup and comparison read as
    // it is (a concatenation would be copied into one on the first read, and compared slowly).
    return [value.slice(0, at), value.slice(at + 3)].join(';')
  }
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
