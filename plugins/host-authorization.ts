/**
 * The `hostAuthorization` plugin (Django's ALLOWED_HOSTS, Rails' HostAuthorization): a request whose
 * host is not one of the site's names is refused before any route, HSTS or cookie sees it, so that a
 * forged Host cannot poison password-reset links or caches, nor reach the app through DNS rebinding.
 *
 * The host is the one the rest of the app sees: the Host header (or HTTP/2's :authority), or what
 * a trusted proxy forwarded (X-Forwarded-Host, or Forwarded's `host` with TRUST_FORWARDED). Its
 * syntax is checked strictly, the Host header's too when a proxy forwarded another one: a value
 * that is not `name[:port]`, `IPv4[:port]` or `[IPv6][:port]` gets 400 whatever the list says.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ConfigError } from '../errors.ts'
import { isProductionEnv, issueMessage, parseOptions } from '../schemas/common.ts'
import {
  allowedHostSchema,
  compileAllowedHosts,
  developmentHosts,
  hostAuthorizationSchema,
  parseHost,
  splitAbsoluteForm,
  type HostAuthorizationOptions
} from '../schemas/host-authorization.ts'
import { isAcmeChallengePath } from './https-redirect.ts'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.ts'
import { addRequestStep, REPLIED } from './hook-chain.ts'

/** The `fastify.hostAuthorization` decorator: names allowed at run time, besides ALLOWED_HOSTS. */
export interface HostAuthorizationControl {
  /**
   * Allows a host name (or `*.example.com`) from now on, e.g. a name on-demand TLS accepted.
   * @throws ConfigError when the name is not a host name, an IP address or a wildcard
   */
  allow (name: string): void
  /** Withdraws a name given to `allow` (names of ALLOWED_HOSTS stay). Returns whether it was there. */
  disallow (name: string): boolean
  /** Whether a Host header value (with or without port) would be let through. */
  isAllowed (host: string): boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Host authorization (ALLOWED_HOSTS) and its run-time names, from fastify-secure-https. */
    hostAuthorization: HostAuthorizationControl
  }
}

/** The authority of an absolute-form request target, or null for a target of another form. @internal */
export function absoluteFormAuthority (target: string): string | null {
  return splitAbsoluteForm(target)?.authority ?? null
}

/**
 * Whether a request carries more than one Host header line, which RFC 9112 section 3.2 makes a 400:
 * Node keeps the first and drops the others, where a proxy or a cache in front may read the last.
 * A scan of the header names, no allocation. @internal
 */
export function hasSeveralHosts (rawHeaders: readonly string[] | undefined): boolean {
  // A request built by hand (fastify.routing() with a bare request, an adapter) may have none.
  if (rawHeaders === undefined) return false
  let seen = false
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) {
      if (seen) return true
      seen = true
    }
  }
  return false
}

const OK = 0
const UNKNOWN = 1
const MALFORMED = 2
type Verdict = typeof OK | typeof UNKNOWN | typeof MALFORMED

/** Longest host quoted in a security event: the rest is an attacker's padding. */
const LOGGED_HOST_LENGTH = 100

function validName (name: string): string {
  const result = allowedHostSchema.safeParse(name)
  if (result.success) return result.data
  throw new ConfigError(result.error.issues.map((issue) => ({ path: 'hostAuthorization.allow', message: issueMessage(issue) })), 'hostAuthorization.allow()')
}

const hostAuthorizationPlugin: FastifyPluginAsync<HostAuthorizationOptions> = async function hostAuthorizationPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(hostAuthorizationSchema, { production: isProductionEnv(process.env.NODE_ENV), ...options }, 'hostAuthorization')
  const configured = config.production ? config.allowedHosts : [...new Set([...config.allowedHosts, ...developmentHosts])]
  const isConfigured = compileAllowedHosts(configured)
  const runtime = new Set<string>()
  let isRuntime: (host: string) => boolean = () => false
  const external = config.isAllowed
  const exempt = new Set(config.exempt)
  const status = config.status
  const limit = eventLimiter(config.eventsPerMinute)

  // One-entry cache of the last host let through: nearly every request of a site carries the same
  // Host. Only verdicts that cannot change are kept (disallow() clears it; the isAllowed option's
  // answers are never kept).
  let lastAllowed: string | undefined

  function classify (host: string): Verdict {
    const name = parseHost(host)
    if (name === null) return MALFORMED
    if (isConfigured(name) || isRuntime(name)) {
      lastAllowed = host
      return OK
    }
    if (external !== undefined && external(name)) return OK
    return UNKNOWN
  }

  function verdictOf (request: FastifyRequest): { verdict: Verdict, host: string } {
    const headers = request.headers
    if (hasSeveralHosts(request.raw.rawHeaders)) return { verdict: MALFORMED, host: headers.host ?? '' }
    // An absolute-form target (GET http://other/path HTTP/1.1, RFC 9112 section 3.2.2) names the
    // request's host, and a server must take it over Host; Fastify routes its path and the app reads
    // Host. Two authorities that disagree make the request malformed, as for HTTP/2 below.
    const target = request.url
    if (target.charCodeAt(0) !== 47 /* / */) {
      const authority = absoluteFormAuthority(target)
      if (authority !== null) {
        const name = parseHost(authority)
        if (name === null || headers.host === undefined || name !== parseHost(headers.host)) return { verdict: MALFORMED, host: authority }
      }
    }
    // HTTP/2: Fastify's request.host is the Host header when a client sends one beside :authority.
    // Two authorities that disagree make the request malformed (RFC 9113 section 8.3.1): a proxy
    // may route by the one and the app build links from the other.
    const authority = headers[':authority']
    if (typeof authority === 'string' && headers.host !== undefined && authority !== headers.host &&
      (parseHost(authority) ?? authority) !== (parseHost(headers.host) ?? headers.host)) {
      return { verdict: MALFORMED, host: authority }
    }
    let host = request.host
    if (useForwarded && headers.forwarded !== undefined) {
      const forwardedHost = request.forwarded?.host
      if (forwardedHost !== undefined) {
        // The Host the proxy received must be well formed too: a quote or comma in it is how a
        // client writes its own Forwarded element through a proxy that does not escape it.
        if (host !== '' && parseHost(host) === null) return { verdict: MALFORMED, host }
        // And allowed: it is request.host, what the app builds links from (Fastify reads it from
        // X-Forwarded-Host, which a proxy that sets Forwarded may pass through from the client).
        if (host !== '' && host !== forwardedHost && host !== lastAllowed) {
          const own = classify(host)
          if (own !== OK) return { verdict: own, host }
        }
        host = forwardedHost
      }
    }
    const verdict = host === lastAllowed ? OK : host === '' ? UNKNOWN : classify(host)
    if (verdict !== OK) return { verdict, host }
    const raw = headers.host
    if (raw !== undefined && raw !== host && parseHost(raw) === null) return { verdict: MALFORMED, host: raw }
    return { verdict, host }
  }

  function isExempt (url: string): boolean {
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    return exempt.has(path) || isAcmeChallengePath(path)
  }

  let useForwarded = false
  fastify.addHook('onReady', async () => {
    useForwarded = fastify.hasRequestDecorator('forwarded')
  })

  fastify.decorate('hostAuthorization', {
    allow (name: string): void {
      runtime.add(validName(name))
      isRuntime = compileAllowedHosts([...runtime])
    },
    disallow (name: string): boolean {
      const removed = runtime.delete(validName(name))
      if (removed) {
        isRuntime = runtime.size === 0 ? () => false : compileAllowedHosts([...runtime])
        lastAllowed = undefined
      }
      return removed
    },
    isAllowed (host: string): boolean {
      return classify(host) === OK
    }
  } satisfies HostAuthorizationControl)

  addRequestStep(fastify, options, 'hostAuthorization', function hostAuthorization (request: FastifyRequest, reply: FastifyReply) {
    const host = request.host
    const headers = request.headers
    if (host === lastAllowed && host === headers.host && (!useForwarded || headers.forwarded === undefined) && headers[':authority'] === undefined && request.url.charCodeAt(0) === 47 /* / */ &&
      !hasSeveralHosts(request.raw.rawHeaders)) return undefined
    const outcome = verdictOf(request)
    if (outcome.verdict === OK || isExempt(request.url)) return undefined
    const suppressed = limit()
    if (suppressed !== false) {
      const shown = outcome.host.length > LOGGED_HOST_LENGTH ? `${outcome.host.slice(0, LOGGED_HOST_LENGTH)}...` : outcome.host
      securityEvent(request.log, 'host.unknown', {
        host: shown,
        malformed: outcome.verdict === MALFORMED,
        remoteAddress: request.raw.socket?.remoteAddress,
        suppressed
      }, outcome.verdict === MALFORMED
        ? 'refused a request whose host is not a valid host name (a forged or injected Host)'
        : `refused a request for "${shown}": not in ALLOWED_HOSTS`)
    } else {
      unloggedSecurityEvent('host.unknown')
    }
    reply.code(outcome.verdict === MALFORMED ? 400 : status)
      .header('content-type', 'text/plain; charset=utf-8')
      .send(outcome.verdict === MALFORMED ? 'Bad Request: invalid host\n' : 'Unknown host\n')
    return REPLIED
  })
}

/** Refuses requests for hosts not in ALLOWED_HOSTS (400), before any route sees them. */
export const hostAuthorization = fp(hostAuthorizationPlugin, { fastify: '5.x', name: 'fastify-secure-https/host-authorization' })
export default hostAuthorization
