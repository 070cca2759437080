/**
 * Options of the `secureSession` plugin: encrypted cookie sessions on @fastify/secure-session.
 */
import { z } from 'zod'
import { isSessionStore, type SessionStore } from '../plugins/session-store.js'
import { secondsSchema } from './common.js'

/** Bytes in a session key (libsodium secretbox). */
export const SESSION_KEY_BYTES = 32
const MAKE_KEY = 'make one with: openssl rand -base64 32 (or npx fastify-secure-https keygen)'

/** True when a key has too few distinct bytes to be random. @internal */
export function isLowEntropy (key: Buffer): boolean {
  return new Set(key).size < 12
}

const keySchema = z
  .union([z.string(), z.instanceof(Buffer)], { error: `a key must be a base64 string; ${MAKE_KEY}` })
  .transform((value, ctx) => {
    if (typeof value === 'string') {
      const text = value.trim()
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) {
        ctx.addIssue({ code: 'custom', message: `a key is not valid base64; ${MAKE_KEY}` })
        return z.NEVER
      }
      value = Buffer.from(text, 'base64')
    }
    if (value.length !== SESSION_KEY_BYTES) {
      ctx.addIssue({ code: 'custom', message: `a key must be exactly ${SESSION_KEY_BYTES} bytes (got ${value.length}); ${MAKE_KEY}` })
      return z.NEVER
    }
    if (isLowEntropy(value)) {
      ctx.addIssue({ code: 'custom', message: `a key is not random (too few distinct bytes); ${MAKE_KEY}` })
      return z.NEVER
    }
    return value
  })

/** Options of the `secureSession` plugin. */
export const secureSessionSchema = z.strictObject({
  /** Keys, newest first: cookies are written with the first and read with any. */
  keys: z.array(keySchema).default([]),
  /** Cookie name; the `__Host-` prefix becomes `__Secure-` when `domain` is set, and is dropped over plain HTTP. */
  cookieName: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, { error: 'must be a cookie token (letters, digits and !#$%&\'*+-.^_`|~)' }).default('__Host-session'),
  /** Absolute lifetime in seconds, enforced inside the encrypted payload. */
  maxAge: secondsSchema('maxAge').min(1, { error: 'must be at least 1 second' }).default(86400),
  /** Idle timeout in seconds (sliding); 0 for none. */
  idleTimeout: secondsSchema('idleTimeout').default(0),
  /** Cookie Domain. Leave unset: a host-only cookie cannot be set by sibling subdomains. */
  domain: z.string().min(1).optional(),
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
  redisUrl: z.string().regex(/^rediss?:\/\/\S+$/, { error: 'must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379' }).optional(),
  /** Clock in milliseconds, for tests; default Date.now. */
  now: z.custom<() => number>((value) => typeof value === 'function', { error: 'now must be a function returning milliseconds' }).optional(),
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  const seen = new Set<string>()
  value.keys.forEach((key, i) => {
    const hex = key.toString('hex')
    if (seen.has(hex)) ctx.addIssue({ code: 'custom', path: ['keys', i], message: `key ${i + 1} repeats an earlier key; each key must be distinct; ${MAKE_KEY}` })
    seen.add(hex)
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
  const bare = config.cookieName.replace(/^__(Host|Secure)-/, '')
  if (!config.secure) return bare
  if (config.cookieName.startsWith('__Host-') && config.domain !== undefined) return `__Secure-${bare}`
  return config.cookieName
}
