/**
 * The `httpsRedirect` plugin: sends plain HTTP to HTTPS, only to the site's own host names.
 *
 * With TLS in this process it runs a small HTTP listener of its own beside the app (HTTP_PORT),
 * started and closed with it. Behind a TLS-terminating proxy it is an onRequest hook on the app that
 * redirects the requests the proxy did not mark as HTTPS. Exempt paths (load-balancer probes) and
 * ACME HTTP-01 challenges are handed to the app instead.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ERR_REDIRECT_LISTEN } from '../errors.js'
import { parseOptions } from '../schemas/common.js'
import { httpsRedirectSchema, type HttpsRedirectConfig, type HttpsRedirectOptions } from '../schemas/https-redirect.js'
import { channels } from '../diagnostics.js'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.js'
import { hostnameOf } from './instance.js'
import { secureTest, type SecureTest } from './secure-request.js'

/** The `fastify.httpsRedirect` decorator. */
export interface HttpsRedirectControl {
  /** Address of the HTTP listener once the app is ready (mode `listener`), else null. */
  address (): AddressInfo | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The HTTP to HTTPS redirect, from fastify-secure-https. */
    httpsRedirect: HttpsRedirectControl
  }
}

/** Path prefix of ACME HTTP-01 challenges, always passed to the app. */
export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/'

/** Outcome of the redirect rules for one request. @internal */
export type RedirectDecision =
  | { kind: 'pass' }
  | { kind: 'redirect', status: 301 | 308, location: string }
  | { kind: 'unknown-host', host: string }

/**
 * Compiles the redirect rules once; the returned function does no allocation beyond the URL.
 * `httpsPort` 0 means the app's own port, known once it listens (`listeningPort`). @internal
 */
export function compileRedirect (
  config: Pick<HttpsRedirectConfig, 'allowedHosts' | 'exempt' | 'httpsPort'>,
  listeningPort: () => number = () => 443
): (method: string, url: string, host: string | undefined) => RedirectDecision {
  const allowed = new Set(config.allowedHosts)
  const exempt = new Set(config.exempt)
  const suffix = (port: number): string => port === 443 ? '' : `:${port}`
  let portSuffix: string | null = config.httpsPort === 0 ? null : suffix(config.httpsPort)
  const pass: RedirectDecision = { kind: 'pass' }
  return (method, url, hostHeader) => {
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    if (exempt.has(path) || path.startsWith(ACME_CHALLENGE_PREFIX)) return pass
    const host = hostnameOf(hostHeader)
    if (!allowed.has(host)) return { kind: 'unknown-host', host }
    // An absolute-form request target (GET http://other/ HTTP/1.1) keeps only its path.
    const target = url.charCodeAt(0) === 47 /* / */ ? url : '/'
    const authority = host.includes(':') ? `[${host}]` : host
    if (portSuffix === null) portSuffix = suffix(listeningPort())
    return {
      kind: 'redirect',
      status: method === 'GET' || method === 'HEAD' ? 301 : 308,
      location: `https://${authority}${portSuffix}${target}`
    }
  }
}

const httpsRedirectPlugin: FastifyPluginAsync<HttpsRedirectOptions> = async function httpsRedirectPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(httpsRedirectSchema, options, 'httpsRedirect')
  const decide = compileRedirect(config, () => {
    const address = fastify.server.address()
    return typeof address === 'object' && address !== null ? address.port : 443
  })
  const limit = eventLimiter(10)

  function reportUnknownHost (log: FastifyInstance['log'], host: string, remoteAddress: string | undefined): void {
    const suppressed = limit()
    if (suppressed === false) return unloggedSecurityEvent('redirect.unknown-host')
    securityEvent(log, 'redirect.unknown-host', { host, remoteAddress, suppressed },
      `refused to redirect to "${host}": not in ALLOWED_HOSTS`)
  }

  if (config.mode === 'hook') {
    fastify.decorate('httpsRedirect', { address: () => null })
    // Chosen once every plugin is registered: proxyTrust's `request.secure` (X-Forwarded-Proto and,
    // when enabled, Forwarded, from trusted peers only) if it is there, else `request.protocol`.
    let isSecure: SecureTest = (request) => request.protocol === 'https'
    fastify.addHook('onReady', async () => { isSecure = secureTest(fastify) })
    fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (isSecure(request)) return
      const decision = decide(request.method, request.url, request.host)
      if (decision.kind === 'pass') return
      if (decision.kind === 'unknown-host') {
        reportUnknownHost(request.log, decision.host, request.socket.remoteAddress)
        return reply.code(400).type('text/plain; charset=utf-8').send('Unknown host\n')
      }
      if (channels.redirect.hasSubscribers) channels.redirect.publish({ status: decision.status })
      return reply.code(decision.status).header('location', decision.location).send()
    })
    return
  }

  let server: Server | null = null

  function handle (req: IncomingMessage, res: ServerResponse): void {
    const decision = decide(req.method ?? 'GET', req.url ?? '/', req.headers.host)
    if (decision.kind === 'pass') {
      fastify.routing(req, res)
      return
    }
    if (decision.kind === 'unknown-host') {
      reportUnknownHost(fastify.log, decision.host, req.socket.remoteAddress)
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' })
      res.end('Unknown host\n')
      return
    }
    if (channels.redirect.hasSubscribers) channels.redirect.publish({ status: decision.status })
    res.writeHead(decision.status, { location: decision.location, 'content-length': '0' })
    res.end()
  }

  fastify.decorate('httpsRedirect', {
    address () {
      const address = server?.address()
      return address !== null && typeof address === 'object' ? address : null
    }
  })

  fastify.addHook('onReady', async () => {
    const listener = createServer({ requestTimeout: 10_000, headersTimeout: 10_000 }, handle)
    listener.keepAliveTimeout = 5_000
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (error: NodeJS.ErrnoException) => {
        reject(new ERR_REDIRECT_LISTEN(`the HTTP redirect listener cannot listen on ${config.host}:${config.port} (${error.code ?? error.message}); choose another HTTP_PORT, or HTTP_PORT=off to run without it`))
      })
      listener.listen({ host: config.host, port: config.port }, resolve)
    })
    server = listener
    const address = listener.address() as AddressInfo
    fastify.log.info({ port: address.port, host: address.address }, 'HTTP to HTTPS redirect listening')
  })

  fastify.addHook('onClose', async () => {
    const listener = server
    if (listener === null) return
    server = null
    await new Promise<void>((resolve) => {
      listener.close(() => resolve())
      listener.closeAllConnections()
    })
  })
}

/** Redirects plain HTTP to HTTPS: its own listener, or a hook behind a TLS-terminating proxy. */
export const httpsRedirect = fp(httpsRedirectPlugin, { fastify: '5.x', name: 'fastify-secure-https/https-redirect' })
export default httpsRedirect
