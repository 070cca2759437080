/**
 * The sealed cookie's format, checked before @fastify/secure-session opens it: `ciphertext;nonce`,
 * both halves base64 in one canonical form, the one a cookie was written in. The peer decodes with
 * Node's base64 decoder, which skips what is not base64, reads `-_` as `+/` and ignores padding and
 * the unused low bits of the last character: without this check one genuine cookie has endless
 * spellings that all open (`!!` inserted anywhere, `=` appended), each a distinct value that misses
 * the cache of opened cookies, is decrypted in full and takes a slot there, and none of which is
 * reported as altered. Two forms are canonical:
 * - base64url without padding, both halves: what the suite writes (sessions/seal.ts);
 * - base64 with its padding, both halves: what @fastify/secure-session writes, after @fastify/cookie
 *   has undone the percent-encoding.
 *
 * A cookie of an app that ran @fastify/secure-session with `cookie: { signed: true }` is that value
 * followed by `.` and @fastify/cookie's signature: it is unsigned (`fastify.unsignCookie`, the
 * secret @fastify/secure-session gave @fastify/cookie, or the app's own) and opened, so switching
 * over logs no one out; the next response writes it unsigned. Pure: no Fastify.
 */
import type { DecodeSession, OpenedSession } from './opened-cookies.ts'

/** What `decodeSecureSession` logs for a cookie refused here; sessions/lifetimes.ts reads it as `malformed`. @internal */
export const NOT_SEALED_FORMAT = 'fastify-secure-https: the cookie is not in the sealed format (two halves of canonical base64 around a semicolon), creating an empty session'

function canonical (text: string, encoding: 'base64' | 'base64url'): boolean {
  return text.length > 0 && Buffer.from(text, encoding).toString(encoding) === text
}

/**
 * True when `value` is `ciphertext;nonce` with both halves in one canonical base64 form: base64url
 * without padding (the suite's) or base64 with padding (@fastify/secure-session's). Linear in the
 * value's length. @internal
 */
export function isSealedFormat (value: string): boolean {
  const semicolon = value.indexOf(';')
  if (semicolon <= 0 || value.indexOf(';', semicolon + 1) !== -1) return false
  const cipher = value.slice(0, semicolon)
  const nonce = value.slice(semicolon + 1)
  return (canonical(cipher, 'base64url') && canonical(nonce, 'base64url')) ||
    (canonical(cipher, 'base64') && canonical(nonce, 'base64'))
}

/** The part of a logger the check uses. @internal */
export interface DebugLog { debug (message: string): void }

/**
 * `decode` (the app's `decodeSecureSession`) that opens cookies in the sealed format only; a value
 * signed by @fastify/cookie is opened through `unsign` (`fastify.unsignCookie`: the unsigned value,
 * or null when the signature is not valid). A value in neither form still goes to `decode`, so that
 * what it refuses is refused in its own words (its logged reasons are its public behaviour, and
 * its own tests check them); what it would open is another spelling of a cookie, refused here and
 * logged at debug on `log` as the peer logs its refusals. Other session names and non-strings go to
 * `decode` as they are. @internal
 */
export function strictDecode<S extends OpenedSession, L extends DebugLog> (
  decode: DecodeSession<S, L>,
  sessionName: string,
  unsign?: (value: string) => string | null
): DecodeSession<S, L> {
  return function decodeSecureSession (cookie, log, name) {
    if (typeof cookie !== 'string' || (name !== undefined && name !== sessionName)) return decode(cookie, log, name)
    if (isSealedFormat(cookie)) return decode(cookie, log, name)
    if (unsign !== undefined && cookie.includes('.')) {
      const unsigned = unsign(cookie)
      if (unsigned !== null && isSealedFormat(unsigned)) return decode(unsigned, log, name)
    }
    if (decode(cookie, log, name) === null) return null
    log?.debug(NOT_SEALED_FORMAT)
    return null
  }
}
