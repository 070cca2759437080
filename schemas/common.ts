/**
 * Building blocks shared by the plugin schemas. Pure validation: no Fastify, no I/O.
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import { ConfigError, type ConfigIssue } from '../errors.ts'

/** NODE_ENV values that mean development; any other value means production. */
export const developmentNodeEnvs: readonly string[] = Object.freeze(['', 'development', 'dev', 'test'])

/**
 * Whether a NODE_ENV value switches the production rules on. Fails closed: the value is trimmed
 * (a CRLF env file sourced by a shell leaves `production\r`) and compared without case, and only
 * unset, empty, `development`, `dev` and `test` mean development; anything else (`Production`,
 * ` PRODUCTION`, `staging`, a typo) means production.
 */
export function isProductionEnv (nodeEnv: string | undefined): boolean {
  if (nodeEnv === undefined) return false
  return !developmentNodeEnvs.includes(nodeEnv.trim().toLowerCase())
}

/** A TCP port; 0 asks the OS for a free one. */
export const portSchema = z
  .number({ error: 'must be a port number; use an integer from 0 to 65535' })
  .int({ error: 'must be a whole number; use an integer from 0 to 65535' })
  .min(0, { error: 'must be 0 or more; use an integer from 0 to 65535' })
  .max(65535, { error: 'must be at most 65535; use an integer from 0 to 65535' })

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

/** True for a DNS name (no wildcard), an IPv4 or an IPv6 address. @internal */
export function isHostname (value: string): boolean {
  if (isIP(value) !== 0) return true
  if (value.length === 0 || value.length > 253) return false
  return value.split('.').every((label) => LABEL.test(label))
}

/** A host name or IP address, lower-cased. IPv6 may be written with or without brackets. */
export const hostnameSchema = z
  .string({ error: 'must be a host name such as example.com' })
  .transform((value) => value.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, ''))
  .refine(isHostname, {
    error: (issue) => `"${String(issue.input)}" is not a host name or IP address; use names such as example.com or www.example.com, without scheme, port or path`
  })

/**
 * Why a REDIS_URL cannot be used, or null: redis:// or rediss://, a host, a port from 1 to 65535
 * when one is given, a database number as its path when one is given. The value is never quoted
 * back (it may carry a password).
 */
export function redisUrlProblem (value: string): string | null {
  if (!/^rediss?:\/\/\S+$/.test(value)) return 'must be a redis:// or rediss:// URL'
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'is not a valid URL (a port that is not a number, a stray character in the host or password; percent-encode the password\'s special characters)'
  }
  if (url.hostname === '') return 'has no host'
  if (url.port !== '' && (Number(url.port) < 1 || Number(url.port) > 65535)) return 'has a port outside 1 to 65535'
  if (!/^(\/\d{0,9})?$/.test(url.pathname)) return 'has a path that is not a database number (redis://host:6379/0)'
  return null
}

/** REDIS_URL: checked by `redisUrlProblem`, with an example for the message. */
export function redisUrlSchema (example: string) {
  return z.string().superRefine((value, ctx) => {
    const problem = redisUrlProblem(value)
    if (problem !== null) ctx.addIssue({ code: 'custom', message: `${problem}, e.g. ${example}` })
  })
}

/** Seconds as a non-negative integer. */
export function secondsSchema (what: string) {
  return z
    .number({ error: `${what} must be a number of seconds` })
    .int({ error: `${what} must be a whole number of seconds` })
    .min(0, { error: `${what} must be 0 or more seconds` })
}

/** Loopback and unspecified host names, for which HSTS and some production rules do not apply. */
export function isLocalHostname (host: string): boolean {
  return host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '::1' ||
    host === '0:0:0:0:0:0:0:1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

/** A zod issue's message, with unknown keys explained. @internal */
export function issueMessage (issue: z.core.$ZodIssue): string {
  return issue.code === 'unrecognized_keys'
    ? `unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; check the spelling against the documentation`
    : issue.message
}

/** Turns zod issues into one ConfigError, naming environment variables where known. @internal */
export function toConfigIssues (
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly (string | number)[] = [],
  variableOf: (path: string) => string | undefined = () => undefined
): ConfigIssue[] {
  const seen = new Set<string>()
  const out: ConfigIssue[] = []
  for (const issue of issues) {
    const segments = [...prefix, ...issue.path.map((p) => typeof p === 'symbol' ? String(p) : p)]
    const path = segments.filter((segment) => typeof segment === 'string').join('.')
    const shown = segments.join('.')
    const message = issueMessage(issue)
    const variable = variableOf(path)
    const key = `${variable ?? shown}\u0000${message}`
    if (seen.has(key)) continue
    seen.add(key)
    const entry: ConfigIssue = { path: shown || '(root)', message }
    if (variable !== undefined) entry.variable = variable
    out.push(entry)
  }
  return out
}

/**
 * Parses plugin options with their schema, throwing one ConfigError that lists every problem.
 * @internal
 */
export function parseOptions<S extends z.ZodType> (schema: S, options: unknown, context: string, prefix: readonly string[] = []): z.output<S> {
  const result = schema.safeParse(options ?? {})
  if (result.success) return result.data
  throw new ConfigError(toConfigIssues(result.error.issues, prefix), context)
}
