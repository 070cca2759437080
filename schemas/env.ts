/**
 * Maps environment variables onto the configuration. Every variable is parsed before anything is
 * reported, so one run shows every problem, each named by its variable.
 */
import { z } from 'zod'
import { ConfigError, type ConfigIssue } from '../errors.ts'
import { isProductionEnv, issueMessage, toConfigIssues } from './common.ts'
import { metricsListenerFields } from './metrics.ts'
import { configSchema, type SecureHttpsConfig } from './config.ts'

/** The environment as Node gives it. */
export type Env = Readonly<Record<string, string | undefined>>

type Parser = (raw: string) => { ok: true, value: unknown } | { ok: false, message: string }

const text: Parser = (raw) => ({ ok: true, value: raw })

/** A value as a message shows it: quoted, control characters escaped, long ones cut. */
function shown (raw: string): string {
  return JSON.stringify(raw.length > 64 ? `${raw.slice(0, 61)}...` : raw)
}

const DIGITS = /^\d+$/
const SIGNED_OR_DECIMAL = /^[+-]?\d+(?:\.\d+)?$/

/** A TCP port: digits, range checked by the schema. */
const port: Parser = (raw) => DIGITS.test(raw)
  ? { ok: true, value: Number(raw) }
  : { ok: false, message: `${shown(raw)} is not a port number; use a whole number from 0 to 65535` }
/** A number of seconds. */
const seconds: Parser = (raw) => {
  if (DIGITS.test(raw)) {
    const value = Number(raw)
    // Past 2^53 - 1 digits no longer make the number written (and past 1e308 they make Infinity).
    return Number.isSafeInteger(value)
      ? { ok: true, value }
      : { ok: false, message: `${shown(raw)} is too large; write a whole number of seconds up to ${Number.MAX_SAFE_INTEGER}, e.g. 86400` }
  }
  if (SIGNED_OR_DECIMAL.test(raw) && raw.startsWith('-')) return { ok: false, message: `${shown(raw)} is negative; write 0 or a positive whole number of seconds, e.g. 86400` }
  return { ok: false, message: `${shown(raw)} is not a whole number of seconds; write digits only, e.g. 86400` }
}
/** A keyword of a fixed list (TLS_MODE=files): compared without case, as HTTP_PORT=off is. */
const keyword: Parser = (raw) => ({ ok: true, value: raw.toLowerCase() })
const list: Parser = (raw) => ({ ok: true, value: raw.split(',').map((item) => item.trim()).filter((item) => item.length > 0) })
const strictBoolean = z.stringbool({ truthy: ['true', '1', 'yes', 'on'], falsy: ['false', '0', 'no', 'off'] })
const boolean: Parser = (raw) => {
  const result = strictBoolean.safeParse(raw.toLowerCase())
  return result.success ? { ok: true, value: result.data } : { ok: false, message: `${shown(raw)} is not a boolean; write true or false` }
}
const portOrOff: Parser = (raw) => {
  if (raw.toLowerCase() === 'off') return { ok: true, value: false }
  return DIGITS.test(raw)
    ? { ok: true, value: Number(raw) }
    : { ok: false, message: `${shown(raw)} is not a port number; use a whole number from 0 to 65535, or off for no redirect listener` }
}
/** ACME_DIRECTORY: a short name (any case) or a URL (kept as written: paths are case-sensitive). */
const directory: Parser = (raw) => ({ ok: true, value: /^letsencrypt(-staging)?$/i.test(raw) ? raw.toLowerCase() : raw })
const trust: Parser = (raw) => {
  const lower = raw.toLowerCase()
  if (lower === 'false') return { ok: true, value: false }
  if (lower === 'true') return { ok: true, value: true }
  if (/^\d+$/.test(raw)) return { ok: true, value: Number(raw) }
  return list(raw)
}

interface Variable { path: string, parse: Parser, doc: string }

/**
 * Every environment variable the suite reads, with the option it sets. The README's table is made
 * from the same list (test/env-docs.test.ts keeps them in step).
 */
export const environmentVariables: Readonly<Record<string, Variable>> = {
  HOST: { path: 'host', parse: text, doc: 'listen address' },
  PORT: { path: 'port', parse: port, doc: 'port of the app' },
  HTTP_PORT: { path: 'httpsRedirect.port', parse: portOrOff, doc: 'port of the HTTP redirect listener, or off' },
  HTTPS_PUBLIC_PORT: { path: 'httpsRedirect.httpsPort', parse: port, doc: 'port in redirect URLs' },
  TLS_MODE: { path: 'tls.mode', parse: keyword, doc: 'self-signed, files, acme, proxy or off' },
  TLS_CERT_FILE: { path: 'tls.certFile', parse: text, doc: 'PEM certificate chain' },
  TLS_KEY_FILE: { path: 'tls.keyFile', parse: text, doc: 'PEM private key' },
  TLS_CA_FILE: { path: 'tls.caFile', parse: text, doc: 'PEM CA bundle' },
  TLS_KEY_PASSPHRASE: { path: 'tls.passphrase', parse: text, doc: 'passphrase of the key' },
  TLS_PROFILE: { path: 'tls.profile', parse: keyword, doc: 'intermediate or modern' },
  TLS_DIR: { path: 'tls.dir', parse: text, doc: 'cache directory' },
  TLS_TICKET_KEYS: { path: 'tls.ticketKeys', parse: list, doc: 'shared session ticket keys' },
  HTTP2: { path: 'tls.http2', parse: boolean, doc: 'HTTP/2 with HTTP/1.1 fallback' },
  ACME_DOMAINS: { path: 'tls.acme.domains', parse: list, doc: 'names to certify' },
  ACME_EMAIL: { path: 'tls.acme.email', parse: text, doc: 'account contact' },
  ACME_DIRECTORY: { path: 'tls.acme.directory', parse: directory, doc: 'directory URL or name' },
  ACME_CA_FILE: { path: 'tls.acme.caFile', parse: text, doc: 'extra CA for the ACME server' },
  ACME_AGREE_TOS: { path: 'tls.acme.agreeTos', parse: boolean, doc: 'accept the CA\'s terms' },
  ACME_CHALLENGE: { path: 'tls.acme.challenge', parse: keyword, doc: 'http-01, tls-alpn-01 or dns-01' },
  ACME_EAB_KID: { path: 'tls.acme.eab.kid', parse: text, doc: 'external account binding key id' },
  ACME_EAB_HMAC_KEY: { path: 'tls.acme.eab.hmacKey', parse: text, doc: 'external account binding HMAC key' },
  ACME_ON_DEMAND_ASK: { path: 'tls.acme.onDemand.ask', parse: text, doc: 'URL asked before an on-demand certificate' },
  TLS_STORAGE: { path: 'tls.storage', parse: keyword, doc: 'file or redis' },
  TLS_STORAGE_KEYS: { path: 'tls.storageKeys', parse: list, doc: 'base64 keys sealing what Redis stores' },
  TLS_REDIS_PREFIX: { path: 'tls.redisPrefix', parse: text, doc: 'prefix of the certificate keys in Redis' },
  HSTS_MAX_AGE: { path: 'hsts.maxAge', parse: seconds, doc: 'seconds' },
  HSTS_INCLUDE_SUBDOMAINS: { path: 'hsts.includeSubDomains', parse: boolean, doc: 'includeSubDomains' },
  HSTS_PRELOAD: { path: 'hsts.preload', parse: boolean, doc: 'preload' },
  SESSION_KEYS: { path: 'secureSession.keys', parse: list, doc: 'base64 keys, newest first' },
  SESSION_COOKIE_NAME: { path: 'secureSession.cookieName', parse: text, doc: 'cookie name' },
  SESSION_MAX_AGE: { path: 'secureSession.maxAge', parse: seconds, doc: 'seconds' },
  SESSION_IDLE_TIMEOUT: { path: 'secureSession.idleTimeout', parse: seconds, doc: 'seconds, 0 for none' },
  SESSION_DOMAIN: { path: 'secureSession.domain', parse: text, doc: 'cookie Domain' },
  SESSION_CSRF: { path: 'secureSession.csrf', parse: boolean, doc: 'CSRF tokens on unsafe methods' },
  SESSION_STORE: { path: 'secureSession.store', parse: keyword, doc: 'cookie or redis' },
  REDIS_URL: { path: 'secureSession.redisUrl', parse: text, doc: 'Redis for SESSION_STORE=redis' },
  TRUST_PROXY: { path: 'proxyTrust.trust', parse: trust, doc: 'false or IPs, CIDRs, presets' },
  TRUST_FORWARDED: { path: 'proxyTrust.forwarded', parse: boolean, doc: 'parse RFC 7239 Forwarded' },
  ALLOWED_HOSTS: { path: 'allowedHosts', parse: list, doc: 'host names of the site' },
  CROSS_SITE_TRUSTED_ORIGINS: { path: 'crossSite.trustedOrigins', parse: list, doc: 'origins allowed to send unsafe requests' },
  METRICS: { path: 'metrics', parse: boolean, doc: 'Prometheus metrics on their own listener' },
  METRICS_PORT: { path: 'metrics.port', parse: port, doc: 'port of the metrics listener' },
  METRICS_HOST: { path: 'metrics.host', parse: text, doc: 'address of the metrics listener' }
}

const byPath = new Map<string, string>(Object.entries(environmentVariables).map(([name, v]) => [v.path, name]))
// Options filled in from another variable report under that variable.
byPath.set('tls.hosts', 'ALLOWED_HOSTS')
byPath.set('httpsRedirect.allowedHosts', 'ALLOWED_HOSTS')
byPath.set('httpsRedirect', 'HTTP_PORT')
byPath.set('hostAuthorization.allowedHosts', 'ALLOWED_HOSTS')
byPath.set('tls.redisUrl', 'REDIS_URL')

/** The environment variable behind an option path, if any. @internal */
export function variableOf (path: string): string | undefined {
  const segments = path.split('.')
  while (segments.length > 0) {
    const found = byPath.get(segments.join('.'))
    if (found !== undefined) return found
    segments.pop()
  }
  return undefined
}

function setPath (target: Record<string, unknown>, path: string, value: unknown): void {
  const segments = path.split('.')
  const last = segments.pop() as string
  let node = target
  for (const segment of segments) {
    const next = node[segment]
    if (next === false) return
    if (typeof next !== 'object' || next === null) node[segment] = {}
    node = node[segment] as Record<string, unknown>
  }
  node[last] = value
}

/**
 * The options object the environment describes, before validation. @internal
 */
export function envToOptions (env: Env): { options: Record<string, unknown>, issues: ConfigIssue[] } {
  const options: Record<string, unknown> = { production: isProductionEnv(env.NODE_ENV) }
  const issues: ConfigIssue[] = []
  for (const [name, variable] of Object.entries(environmentVariables)) {
    const raw = env[name]?.trim()
    if (raw === undefined || raw === '') continue
    const parsed = variable.parse(raw)
    if (!parsed.ok) {
      issues.push({ path: variable.path, variable: name, message: parsed.message })
      continue
    }
    if (name === 'HTTP_PORT' && parsed.value === false) {
      options.httpsRedirect = false
      continue
    }
    // METRICS_PORT and METRICS_HOST tune the metrics listener; only METRICS=true turns it on. Set
    // without it they are still checked, so that a mistake shows before the day metrics are turned on.
    if (variable.path.startsWith('metrics.') && options.metrics === undefined) {
      const field = metricsListenerFields[variable.path.slice('metrics.'.length) as 'port' | 'host']
      const checked = field.safeParse(parsed.value)
      if (!checked.success) issues.push({ path: variable.path, variable: name, message: issueMessage(checked.error.issues[0] as z.core.$ZodIssue) })
      continue
    }
    setPath(options, variable.path, parsed.value)
    // One Redis for the fleet: REDIS_URL serves the session store and the certificate storage.
    if (name === 'REDIS_URL') setPath(options, 'tls.redisUrl', parsed.value)
  }
  return { options, issues }
}

/**
 * One report per problem of a variable. A variable that is required and missing gets that one
 * message (what else is said of it, such as "is empty while the HTTPS redirect is on", follows from
 * it); a variable that two sections read (REDIS_URL serves the session store and the certificate
 * storage) gets each message once, compared up to its example. @internal
 */
export function distinctIssues (issues: readonly ConfigIssue[]): ConfigIssue[] {
  const isRequired = (issue: ConfigIssue): boolean => issue.message.startsWith('is required')
  const required = new Set(issues.filter(isRequired).map((issue) => issue.variable))
  const seen = new Set<string>()
  return issues.filter((issue) => {
    if (issue.variable === undefined) return true
    const key = required.has(issue.variable) ? (isRequired(issue) ? 'required' : null) : issue.message.split(', e.g.')[0] as string
    if (key === null || seen.has(`${issue.variable}\0${key}`)) return false
    seen.add(`${issue.variable}\0${key}`)
    return true
  })
}

/**
 * Reads the configuration from environment variables (see the README's table), validates it with
 * the production rules unless NODE_ENV is unset, development, dev or test (trimmed, any case), and
 * returns it resolved and frozen.
 * @throws ConfigError listing every problem as `VARIABLE: what is wrong; what would be right`.
 */
export function loadConfig (env: Env = process.env): SecureHttpsConfig {
  const { options, issues } = envToOptions(env)
  const result = configSchema.safeParse(options)
  const all = [...issues]
  if (!result.success) {
    const reported = new Set(issues.map((issue) => issue.variable))
    for (const issue of toConfigIssues(result.error.issues, [], variableOf)) {
      // A variable that failed to parse was left out; what the schema says of the gap is noise.
      if (issue.variable !== undefined && reported.has(issue.variable) && !issue.path.includes('.')) continue
      if (issue.variable !== undefined && reported.has(issue.variable)) continue
      all.push(issue)
    }
  }
  if (all.length > 0) throw new ConfigError(distinctIssues(all))
  if (!result.success) throw new ConfigError([{ path: '(root)', message: 'invalid configuration' }])
  return result.data
}
