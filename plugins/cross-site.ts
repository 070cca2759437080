/**
 * The `crossSite` plugin: a page on another site cannot make a browser send an unsafe request (a
 * form POST that logs the browser in as the attacker, logs it out, or changes anything) to the app.
 * Tokenless, as Go 1.25's net/http.CrossOriginProtection does it:
 *
 * 1. Safe methods (GET, HEAD, OPTIONS) pass: they must not change anything.
 * 2. An `Origin` in `trustedOrigins` passes.
 * 3. `Sec-Fetch-Site` (every current browser sends it): `same-origin` or `none` (typed, bookmarked)
 *    pass; `same-site` and `cross-site` are refused.
 * 4. Without it, `Origin` must be the request's own origin (scheme and host as the app sees them,
 *    through trusted proxies); without either header the request is not from a browser (curl, a
 *    server) and passes.
 *
 * A refused request gets 403 and a `csrf.rejected` security event. Routes opt out with
 * `config: { crossSite: false }` (a webhook that other sites post to). Token CSRF (SESSION_CSRF)
 * can run beside it.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { parseOptions } from '../schemas/common.ts'
import { crossSiteSchema, type CrossSiteOptions } from '../schemas/cross-site.ts'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.ts'
import { addRequestStep, REPLIED } from './hook-chain.ts'
import { secureTest, type SecureTest } from './secure-request.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false` lets other sites' pages send unsafe requests to this route (fastify-secure-https crossSite). */
    crossSite?: boolean
  }
}

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/** Longest header value quoted in a security event. */
const LOGGED_LENGTH = 100

function shorten (value: string | undefined): string | undefined {
  return value === undefined || value.length <= LOGGED_LENGTH ? value : `${value.slice(0, LOGGED_LENGTH)}...`
}

/** The request's own origin, as a browser would write it in `Origin`. @internal */
export function ownOrigin (secure: boolean, host: string): string {
  const lower = host.toLowerCase()
  const defaultPort = secure ? ':443' : ':80'
  const bare = lower.endsWith(defaultPort) ? lower.slice(0, -defaultPort.length) : lower
  return `${secure ? 'https' : 'http'}://${bare}`
}

/**
 * The decision for one request; `null` lets it through, else the reason it is refused.
 * `origin` and `site` are the raw header values. @internal
 */
export function crossSiteVerdict (
  method: string,
  origin: string | undefined,
  site: string | undefined,
  trusted: ReadonlySet<string>,
  own: () => string
): string | null {
  if (SAFE_METHODS.has(method)) return null
  if (origin !== undefined && trusted.has(origin.toLowerCase())) return null
  if (site !== undefined) {
    if (site === 'same-origin' || site === 'none') return null
    // The header's text goes into the log message only when it is a value browsers send: anything
    // else is the client's own writing (the event's secFetchSite field has it, cut to 100 characters).
    return site === 'cross-site' || site === 'same-site' ? `Sec-Fetch-Site is ${site}` : 'Sec-Fetch-Site is not a value browsers send'
  }
  if (origin === undefined) return null
  return origin.toLowerCase() === own() ? null : 'Origin is another origin'
}

const crossSitePlugin: FastifyPluginAsync<CrossSiteOptions> = async function crossSitePlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(crossSiteSchema, options, 'crossSite')
  const trusted: ReadonlySet<string> = new Set(config.trustedOrigins)
  const limit = eventLimiter(config.eventsPerMinute)
  // Chosen once every plugin is registered: proxyTrust's `request.secure` and `request.forwarded`
  // (what trusted proxies say) when it is there.
  let isSecure: SecureTest = (request) => request.protocol === 'https'
  let useForwarded = false
  fastify.addHook('onReady', async () => {
    isSecure = secureTest(fastify)
    useForwarded = fastify.hasRequestDecorator('forwarded')
  })

  function hostOf (request: FastifyRequest): string {
    return (useForwarded && request.headers.forwarded !== undefined ? request.forwarded?.host : undefined) ?? request.host
  }

  // Every request's, before the session is opened and before the app's own hooks: through the
  // aggregate, a step of its onRequest hook (plugins/hook-chain.ts), after host authorization; on its
  // own, an onRequest hook. Safe methods cost a Set lookup; 404 handlers are covered too.
  addRequestStep(fastify, options, 'crossSiteCheck', function crossSiteCheck (request: FastifyRequest, reply: FastifyReply) {
    if (SAFE_METHODS.has(request.method)) return undefined
    if ((request.routeOptions.config as { crossSite?: boolean } | undefined)?.crossSite === false) return undefined
    const headers = request.headers
    const origin = headers.origin
    const site = headers['sec-fetch-site']
    const reason = crossSiteVerdict(request.method, origin, typeof site === 'string' ? site : undefined, trusted, () => ownOrigin(isSecure(request), hostOf(request)))
    if (reason === null) return undefined
    const suppressed = limit()
    if (suppressed !== false) {
      securityEvent(request.log, 'csrf.rejected', {
        method: request.method,
        origin: shorten(origin),
        secFetchSite: shorten(typeof site === 'string' ? site : undefined),
        remoteAddress: request.raw.socket?.remoteAddress,
        suppressed
      }, `refused a cross-site ${request.method} (${reason}): a page on another site cannot send unsafe requests here; add its origin to crossSite.trustedOrigins if it should`)
    } else {
      unloggedSecurityEvent('csrf.rejected')
    }
    reply.code(403).header('content-type', 'text/plain; charset=utf-8').send('Forbidden: cross-site request\n')
    return REPLIED
  })
}

/** Refuses unsafe requests sent by other sites' pages (Sec-Fetch-Site, then Origin), tokenless. */
export const crossSite = fp(crossSitePlugin, { fastify: '5.x', name: 'fastify-secure-https/cross-site' })
export default crossSite
