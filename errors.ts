/**
 * Every error the suite throws, each with a stable code. The codes are documented in
 * docs/errors.md; test/errors.test.ts keeps the two in step.
 */
import createError from '@fastify/error'

/** One problem found while validating the configuration. */
export interface ConfigIssue {
  /** Dotted path of the option, e.g. `hsts.maxAge`. */
  path: string
  /** The environment variable behind the option, when there is one. */
  variable?: string
  /** What is wrong and how to fix it. */
  message: string
}

/**
 * Thrown by `loadConfig`, by `configSchema` based helpers and by each plugin at register time when
 * its options are invalid. The message lists every problem, one per line; `issues` holds them.
 */
export class ConfigError extends Error {
  readonly code = 'ERR_SECURE_HTTPS_CONFIG'
  readonly issues: readonly ConfigIssue[]

  constructor (issues: readonly ConfigIssue[], context = 'fastify-secure-https') {
    // A message may quote the value it refuses, and goes to terminals and logs: a URL's user and
    // password (ACME_ON_DEMAND_ASK=https://user:password@...) are not shown.
    const shown = issues.map((issue) => {
      const message = withoutCredentials(issue.message)
      return message === issue.message ? issue : { ...issue, message }
    })
    const lines = shown.map((issue) => `  - ${issue.variable ?? issue.path}: ${issue.message}`)
    super(`Invalid ${context} configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`)
    this.name = 'ConfigError'
    this.issues = Object.freeze(shown)
  }
}

/**
 * `text` with the user information of every URL in it (`scheme://user:password@`) replaced by
 * `***`. One pass: each character is looked at a bounded number of times. @internal
 */
export function withoutCredentials (text: string): string {
  let out = ''
  let from = 0
  let at = text.indexOf('://')
  while (at !== -1) {
    const start = at + 3
    let end = start
    // Userinfo ends at "@"; a path, query, fragment, quote, backslash or space ends the authority first.
    while (end < text.length) {
      const c = text.charCodeAt(end)
      if (c === 64 || c === 47 || c === 63 || c === 35 || c === 34 || c === 92 || c <= 32) break
      end++
    }
    if (end > start && text.charCodeAt(end) === 64) {
      out += text.slice(from, start) + '***'
      from = end
    }
    // The "/" that stopped the scan may be the start of the next "://" with the character before it.
    at = text.indexOf('://', end > start ? end - 1 : start)
  }
  return from === 0 ? text : out + text.slice(from)
}

/** The Fastify instance was constructed with options that do not match the plugin's config. */
export const ERR_INSTANCE_MISMATCH = createError<'ERR_SECURE_HTTPS_INSTANCE_MISMATCH', [string]>(
  'ERR_SECURE_HTTPS_INSTANCE_MISMATCH',
  '%s'
)

/** A certificate or key could not be used: unreadable, unparsable, mismatched or out of date. */
export const ERR_CERTIFICATE = createError<'ERR_SECURE_HTTPS_CERTIFICATE', [string]>(
  'ERR_SECURE_HTTPS_CERTIFICATE',
  '%s'
)

/** The HTTP redirect listener could not start. */
export const ERR_REDIRECT_LISTEN = createError<'ERR_SECURE_HTTPS_REDIRECT_LISTEN', [string]>(
  'ERR_SECURE_HTTPS_REDIRECT_LISTEN',
  '%s'
)

/** The server-side session store (Redis) could not answer; the request that needed the session gets 503. */
export const ERR_SESSION_STORE_UNAVAILABLE = createError<'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE', [string]>(
  'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE',
  '%s',
  503
)

/**
 * A folder or file that holds private keys (TLS_DIR) cannot be created, or another local user owns
 * it or can write it (so it could hold planted keys or certificates).
 */
export const ERR_INSECURE_STORAGE = createError<'ERR_SECURE_HTTPS_INSECURE_STORAGE', [string]>(
  'ERR_SECURE_HTTPS_INSECURE_STORAGE',
  '%s'
)

/** An optional package (acme-client, ioredis, prom-client) that the configuration needs is not installed. */
export const ERR_MISSING_DEPENDENCY = createError<'ERR_SECURE_HTTPS_MISSING_DEPENDENCY', [string]>(
  'ERR_SECURE_HTTPS_MISSING_DEPENDENCY',
  '%s'
)

/** A storage key or value that the certificate storage refuses (a key that is not a plain path). */
export const ERR_STORAGE = createError<'ERR_SECURE_HTTPS_STORAGE', [string]>(
  'ERR_SECURE_HTTPS_STORAGE',
  '%s'
)

/** The certificate storage (TLS_STORAGE=redis) cannot be reached; what is being served keeps serving. */
export const ERR_STORAGE_UNAVAILABLE = createError<'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE', [string]>(
  'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE',
  '%s'
)

/** A write guarded by a storage lock was refused: the lease ran out and another instance may hold it. */
export const ERR_LOCK_LOST = createError<'ERR_SECURE_HTTPS_LOCK_LOST', [string]>(
  'ERR_SECURE_HTTPS_LOCK_LOST',
  '%s'
)

/** A value in the certificate storage failed authentication (tampered, or sealed with another TLS_STORAGE_KEYS). */
export const ERR_STORAGE_INTEGRITY = createError<'ERR_SECURE_HTTPS_STORAGE_INTEGRITY', [string]>(
  'ERR_SECURE_HTTPS_STORAGE_INTEGRITY',
  '%s'
)

/**
 * The metrics listener (METRICS_PORT) could not listen. Logged, not thrown: it starts once the app
 * listens, and the app keeps serving without it.
 */
export const ERR_METRICS_LISTEN = createError<'ERR_SECURE_HTTPS_METRICS_LISTEN', [string]>(
  'ERR_SECURE_HTTPS_METRICS_LISTEN',
  '%s'
)

/** Every code above, for the documentation test. @internal */
export const errorCodes = [
  'ERR_SECURE_HTTPS_CONFIG',
  'ERR_SECURE_HTTPS_INSTANCE_MISMATCH',
  'ERR_SECURE_HTTPS_CERTIFICATE',
  'ERR_SECURE_HTTPS_REDIRECT_LISTEN',
  'ERR_SECURE_HTTPS_SESSION_STORE_UNAVAILABLE',
  'ERR_SECURE_HTTPS_INSECURE_STORAGE',
  'ERR_SECURE_HTTPS_MISSING_DEPENDENCY',
  'ERR_SECURE_HTTPS_STORAGE',
  'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE',
  'ERR_SECURE_HTTPS_LOCK_LOST',
  'ERR_SECURE_HTTPS_STORAGE_INTEGRITY',
  'ERR_SECURE_HTTPS_METRICS_LISTEN'
] as const
