/**
 * Options of the `secureSession` plugin: encrypted cookie sessions on @fastify/secure-session.
 */
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import { z } from 'zod'
import { isSessionStore, type SessionStore } from '../sessions/store.ts'
import { redisUrlSchema, secondsSchema } from './common.ts'

/** Bytes in a session key (libsodium secretbox). */
export const SESSION_KEY_BYTES = 32
const MAKE_KEY = 'make one with: openssl rand -base64 32 (or npx fastify-secure-https keygen)'

/** True when a key has too few distinct bytes to be random. @internal */
export function isLowEntropy (key: Uint8Array): boolean {
  return new Set(key).size < 12
}

/**
 * Keys printed where anyone can copy them: @fastify/secure-session's example key file and the key in
 * its README, and keys that circulate as examples (a phrase, hex digits and a counting sequence as
 * text). A session sealed with one can be forged by anyone.
 */
const PUBLISHED_KEYS: readonly Buffer[] = [
  Buffer.from('9bb9bca32df0b21c58146aad9cab0272d9e0f716e3118bfff37703ae330be08c', 'hex'), // @fastify/secure-session examples/simple/example-key
  Buffer.from('4fe91796c30bd989d95b62dc46c7c3ba0b6aa2df2187400586a4121c54c53b85', 'hex'), // @fastify/secure-session README, "Using keys as strings"
  Buffer.from('my-super-secret-session-key-2024', 'latin1'),
  Buffer.from('0123456789abcdef0123456789abcdef', 'latin1'),
  Buffer.from(Array.from({ length: 32 }, (_, i) => i))
]

/** True for a key printed in @fastify/secure-session's docs and examples, or another well-known example. */
export function isPublishedSessionKey (key: Uint8Array): boolean {
  return PUBLISHED_KEYS.some((published) => published.equals(key))
}

/**
 * Why a 32-byte session key is not fit for production, or null when nothing is found: a published
 * example; text (a password or phrase base64-encoded: every byte printable ASCII); a sequence
 * (bytes a constant step apart, such as 0, 1, 2, ...); a repeated pattern of up to 16 bytes; or
 * fewer than 12 distinct byte values. Linear in the key's length. Random keys pass: the most
 * likely false alarm, 32 printable bytes out of 32 random ones, has odds of about 1 in 6 * 10^13.
 * The config (production) and `fastify-secure-https doctor` both use this test, for the session keys
 * and, in production, for TLS_TICKET_KEYS and TLS_STORAGE_KEYS too.
 */
export function sessionKeyWeakness (key: Uint8Array): string | null {
  if (isPublishedSessionKey(key)) return 'is a published example key: anyone can forge what it protects'
  if (key.length === 0) return 'is empty'
  if (key.every((byte) => byte >= 0x20 && byte <= 0x7e)) return 'decodes to printable text (a password or a phrase, not random bytes)'
  if (key.length > 2) {
    const step = ((key[1] as number) - (key[0] as number) + 256) % 256
    let progression = true
    for (let i = 2; i < key.length && progression; i++) progression = ((key[i] as number) - (key[i - 1] as number) + 256) % 256 === step
    if (progression) return `is a sequence (each byte ${step} more than the one before)`
  }
  for (let period = 1; period <= Math.min(16, key.length >> 1); period++) {
    let repeats = true
    for (let i = period; i < key.length && repeats; i++) repeats = key[i] === key[i - period]
    if (repeats) return `repeats a pattern of ${period} byte${period === 1 ? '' : 's'}`
  }
  if (isLowEntropy(key)) return 'has too few distinct byte values to be random'
  return null
}

let tldts: typeof import('tldts') | undefined
/**
 * tldts and its public suffix list (220 kB of code), loaded when a SESSION_DOMAIN is first
 * checked: most apps set none, and then never load it.
 */
function publicSuffixList (): typeof import('tldts') {
  tldts ??= createRequire(import.meta.url)('tldts') as typeof import('tldts')
  return tldts
}

/**
 * Why a cookie Domain is refused, or null (RFC 6265: a host name, optionally with a leading dot
 * that browsers ignore). Refused: anything but letters, digits, dots and hyphens (so no `;`, `,`,
 * spaces or control characters, which would inject attributes into Set-Cookie), an IP address
 * (a Domain cookie is for sharing with subdomains, which an address has none of), and a public
 * suffix such as `com` or `co.uk`, which browsers refuse. @internal
 */
export function cookieDomainProblem (value: string): string | null {
  const domain = value.startsWith('.') ? value.slice(1) : value
  if (domain.length === 0 || domain.length > 253) return 'must be a host name such as example.com'
  if (!/^[a-z0-9.-]+$/.test(domain)) return `must be a host name such as example.com: letters, digits, dots and hyphens only (got ${JSON.stringify(value.slice(0, 80))})`
  if (isIP(domain) !== 0) return 'must be a host name, not an IP address: a Domain cookie is shared with subdomains, which an address has none of; leave SESSION_DOMAIN unset for a host-only cookie'
  if (!domain.split('.').every((label) => /^(?!-)[a-z0-9-]{1,63}(?<!-)$/.test(label))) return `"${domain}" is not a valid host name (labels of 1 to 63 letters, digits and inner hyphens, separated by dots)`
  const parsed = publicSuffixList().parse(domain, { allowPrivateDomains: true })
  if (parsed.domain === null || parsed.publicSuffix === domain) return `"${domain}" is a public suffix (like com, co.uk or github.io), for which browsers refuse cookies; use your site's own domain, e.g. example.com, or leave SESSION_DOMAIN unset`
  return null
}

/**
 * A key's text as bytes: standard base64 (`+/`) or URL-safe base64 (`-_`, RFC 4648 section 5), one
 * alphabet, padded or not, in its canonical spelling; null for anything else. @fastify/secure-session
 * took a string key with Node's lenient decoder, which reads both alphabets: an app moving over
 * keeps its key, and with it every session, in the spelling it had. What that decoder also took
 * (mixed alphabets, misplaced or wrong padding, other characters skipped, stray low bits) is
 * refused: a key spelled so has been mangled on its way. Linear in the text's length. @internal
 */
export function decodeKeyText (text: string): Buffer | null {
  const match = /^(?:([A-Za-z0-9+/]+)|([A-Za-z0-9_-]+))(={0,2})$/.exec(text)
  if (match === null) return null
  const body = (match[1] ?? match[2]) as string
  const alphabet = match[1] === undefined ? 'base64url' : 'base64'
  const padding = (match[3] as string).length
  // Padded: to a multiple of four exactly; unpadded: a length padding would complete (not 1 mod 4).
  if (padding > 0 ? (body.length + padding) % 4 !== 0 || body.length % 4 === 0 : body.length % 4 === 1) return null
  const bytes = Buffer.from(body, alphabet)
  // Canonical: unused low bits of the last character are zero (the text is the bytes' only spelling).
  const again = bytes.toString(alphabet).replace(/=+$/, '')
  return again === body ? bytes : null
}

const keySchema = z
  .union([z.string(), z.instanceof(Buffer)], { error: `a key must be a base64 string; ${MAKE_KEY}` })
  .transform((value, ctx) => {
    if (typeof value === 'string') {
      const decoded = decodeKeyText(value.trim())
      if (decoded === null) {
        ctx.addIssue({ code: 'custom', message: `a key is not valid base64 (standard or URL-safe); ${MAKE_KEY}` })
        return z.NEVER
      }
      value = decoded
    }
    if (value.length !== SESSION_KEY_BYTES) {
      ctx.addIssue({ code: 'custom', message: `a key must be exactly ${SESSION_KEY_BYTES} bytes (got ${value.length}); ${MAKE_KEY}` })
      return z.NEVER
    }
    return value
  })

const ONE_SESSION = 'for a second encrypted cookie, register @fastify/secure-session itself inside a child plugin (an encapsulated context) under another sessionName (docs/compat.md, "One session")'

/**
 * What an app moving from @fastify/secure-session may pass that the suite does not take, each with
 * the way forward: several sessions (an array of options, a `sessionName`), a key derived from a
 * `secret` and `salt`. Checked before the options themselves, where "unknown option" would not
 * say why. @internal
 */
export function peerOnlyIssues (options: unknown): Array<{ path: string[], message: string }> {
  if (Array.isArray(options)) return [{ path: [], message: `takes one session per app, request.session (no array of options); ${ONE_SESSION}` }]
  if (typeof options !== 'object' || options === null) return []
  const given = options as Record<string, unknown>
  const issues: Array<{ path: string[], message: string }> = []
  if (given.sessionName !== undefined) {
    issues.push({ path: ['sessionName'], message: `is not an option: the suite's session is request.session (no sessionName); remove it, and ${ONE_SESSION}` })
  }
  for (const name of ['secret', 'salt'] as const) {
    if (given[name] !== undefined) {
      issues.push({ path: [name], message: 'is not an option: the suite takes keys (SESSION_KEYS, 32 random bytes each), not a secret and salt; derive the key once and put it in SESSION_KEYS (docs/compat.md, "Keys, not passphrases")' })
    }
  }
  return issues
}

/** Options of the `secureSession` plugin. */
export const secureSessionSchema = z.strictObject({
  /** Keys, newest first: cookies are written with the first and read with any. */
  keys: z.array(keySchema).default([]),
  /** Cookie name; the `__Host-` prefix becomes `__Secure-` when `domain` is set, and is dropped over plain HTTP. */
  cookieName: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, { error: 'must be a cookie token (letters, digits and !#$%&\'*+-.^_`|~)' })
    .refine((name) => !/^__(host|secure)-$/i.test(name), { error: 'is only a prefix: add a name after it, e.g. __Host-session' })
    .default('__Host-session'),
  /** Absolute lifetime in seconds, enforced inside the encrypted payload. */
  maxAge: secondsSchema('maxAge').min(1, { error: 'must be at least 1 second' }).default(86400),
  /** Idle timeout in seconds (sliding); 0 for none. */
  idleTimeout: secondsSchema('idleTimeout').default(0),
  /** Cookie Domain. Leave unset: a host-only cookie cannot be set by sibling subdomains. */
  domain: z.string({ error: 'must be a host name such as example.com' })
    .transform((value) => value.trim().toLowerCase())
    .superRefine((value, ctx) => {
      const problem = cookieDomainProblem(value)
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem })
    })
    .optional(),
  sameSite: z.enum(['lax', 'strict', 'none']).default('lax'),
  /** Whether the cookie is marked Secure; false only when the app speaks plain HTTP (TLS_MODE=off). */
  secure: z.boolean().default(true),
  /** CSRF tokens (@fastify/csrf-protection) bound to the session, checked on every unsafe method. */
  csrf: z.boolean({ error: 'csrf must be true or false' }).default(false),
  /** Server-side store: the cookie then holds only an encrypted opaque id. Default: data in the cookie. */
  store: z.union([
    z.enum(['cookie', 'redis']),
    z.custom<SessionStore>(isSessionStore)
  ], { error: 'store must be \'cookie\', \'redis\' (SESSION_STORE) or an object implementing get(id), set(id, data, ttlSeconds) and destroy(id) (see SessionStore)' }).optional(),
  /** Redis for `store: 'redis'`: redis://[:password@]host:port[/db], or rediss:// for TLS. */
  redisUrl: redisUrlSchema('redis://127.0.0.1:6379').optional(),
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  const seen = new Set<string>()
  value.keys.forEach((key, i) => {
    const hex = key.toString('hex')
    if (seen.has(hex)) ctx.addIssue({ code: 'custom', path: ['keys', i], message: `key ${i + 1} repeats an earlier key; each key must be distinct; ${MAKE_KEY}` })
    seen.add(hex)
    // Production refuses every kind of weak key; development only keys that cannot be random at all.
    const weakness = value.production ? sessionKeyWeakness(key) : isLowEntropy(key) ? 'has too few distinct byte values to be random' : null
    if (weakness !== null) {
      ctx.addIssue({ code: 'custom', path: ['keys', i], message: `key ${i + 1} of ${value.keys.length} ${weakness}; replace it with a key of 32 random bytes (${MAKE_KEY})` })
    }
  })
  if (value.production && value.keys.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['keys'], message: `is required in production: without it every restart logs everyone out and instances cannot read each other's cookies; ${MAKE_KEY}` })
  }
  if (value.idleTimeout > value.maxAge) {
    ctx.addIssue({ code: 'custom', path: ['idleTimeout'], message: `idleTimeout (${value.idleTimeout}) is longer than maxAge (${value.maxAge}) and would never apply; set SESSION_IDLE_TIMEOUT below SESSION_MAX_AGE, or 0 for none` })
  }
  if (value.store === 'redis' && value.redisUrl === undefined) {
    ctx.addIssue({ code: 'custom', path: ['redisUrl'], message: 'is required with SESSION_STORE=redis; set REDIS_URL, e.g. redis://127.0.0.1:6379 (rediss:// for TLS)' })
  }
  // secure: false is for plain HTTP (TLS_MODE=off), which production refuses: the cookie would also
  // go out over plain HTTP (the redirect listener), where anyone on the path can take the session.
  if (value.production && !value.secure) {
    ctx.addIssue({ code: 'custom', path: ['secure'], message: 'a session cookie without Secure is refused in production: browsers would send it over plain HTTP too; remove secure: false (it is for TLS_MODE=off in development)' })
  }
  if (value.sameSite === 'none' && !value.secure) {
    ctx.addIssue({ code: 'custom', path: ['sameSite'], message: 'SameSite=None requires a Secure cookie, which plain HTTP cannot carry; use lax' })
  }
})

/** What a user passes to the `secureSession` plugin. */
export type SecureSessionOptions = z.input<typeof secureSessionSchema>
/** The resolved `secureSession` options. */
export type SecureSessionConfig = z.output<typeof secureSessionSchema>

/**
 * The cookie name actually used: browsers only accept `__Host-` without Domain and `__Secure-`/`__Host-`
 * with Secure, so the prefix follows the other settings. @internal
 */
export function effectiveCookieName (config: Pick<SecureSessionConfig, 'cookieName' | 'domain' | 'secure'>): string {
  // Browsers match the prefixes in any case (RFC 6265bis section 4.1.3): `__host-` is `__Host-`. A
  // name whose attributes fit its prefix is kept as written (its cookies stay valid); otherwise the
  // prefix is taken off or changed to the one the attributes allow, in its canonical spelling.
  const prefix = /^__(host|secure)-/i.exec(config.cookieName)
  if (prefix === null) return config.cookieName
  const bare = config.cookieName.slice(prefix[0].length)
  if (!config.secure) return bare
  const host = (prefix[1] as string).toLowerCase() === 'host'
  if (!host || config.domain === undefined) return config.cookieName
  return `__Secure-${bare}`
}
