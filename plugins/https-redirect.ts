/**
 * The `httpsRedirect` plugin: sends plain HTTP to HTTPS, only to the site's own host names.
 *
 * With TLS in this process it runs a small HTTP listener of its own beside the app (HTTP_PORT),
 * started when the app listens (`app.listen()`, Fastify's onListen hook: `ready()` and `inject()`
 * open no port) and closed with it. Behind a TLS-terminating proxy it is an onRequest hook on the
 * app that redirects the requests the proxy did not mark as HTTPS. Exempt paths (load-balancer
 * probes) and ACME HTTP-01 challenges are handed to the app instead.
 *
 * In production the redirects are permanent (301, or 308 for other methods than GET and HEAD).
 * Outside production they are temporary (307) and `Cache-Control: no-store`: a browser that cached
 * a permanent redirect of http://localhost:8080 would send every later app on that port to HTTPS.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ERR_REDIRECT_LISTEN } from '../errors.ts'
import { parseOptions } from '../schemas/common.ts'
import { compileAllowedHosts, parseHost, splitAbsoluteForm } from '../schemas/host-authorization.ts'
import { httpsRedirectSchema, type HttpsRedirectConfig, type HttpsRedirectOptions } from '../schemas/https-redirect.ts'
import { channels } from '../diagnostics.ts'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.ts'
import { listeningPromise } from './listening.ts'
import { secureTest, type SecureTest } from './secure-request.ts'

/** The `fastify.httpsRedirect` decorator. */
export interface HttpsRedirectControl {
  /**
   * Address of the HTTP listener while it listens (mode `listener`), else null. It starts just after
   * `app.listen()` resolves: wait for it with `listening()`.
   */
  address (): AddressInfo | null
  /** Why the HTTP listener could not start (ERR_SECURE_HTTPS_REDIRECT_LISTEN), or null. */
  error (): Error | null
  /**
   * Resolves with the listener's address once it listens (the app's `listen()` starts it), or null
   * in hook mode or when the app closed first; rejects with ERR_SECURE_HTTPS_REDIRECT_LISTEN when it
   * could not listen.
   */
  listening (): Promise<AddressInfo | null>
}

/** The error for a redirect listener that cannot listen, with the fix for the usual causes. @internal */
export function redirectListenError (host: string, port: number, error: NodeJS.ErrnoException): Error {
  const where = `${host}:${port}`
  const code = error.code ?? error.message
  if (code === 'EACCES' && port < 1024) {
    return new ERR_REDIRECT_LISTEN(`the HTTP redirect listener cannot listen on ${where} (EACCES): ports below 1024 are privileged. Give node the right to bind them (sudo setcap cap_net_bind_service=+ep "$(command -v node)"), lower the limit (sysctl net.ipv4.ip_unprivileged_port_start=80), or listen on a higher port (HTTP_PORT=8080) and forward 80 to it; HTTP_PORT=off runs without it`)
  }
  if (code === 'EADDRINUSE') {
    return new ERR_REDIRECT_LISTEN(`the HTTP redirect listener cannot listen on ${where} (EADDRINUSE): another process has that port (find it with: ss -ltnp 'sport = :${port}'); choose another HTTP_PORT, or HTTP_PORT=off to run without it`)
  }
  return new ERR_REDIRECT_LISTEN(`the HTTP redirect listener cannot listen on ${where} (${code}); choose another HTTP_PORT, or HTTP_PORT=off to run without it`)
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The HTTP to HTTPS redirect, from fastify-secure-https. */
    httpsRedirect: HttpsRedirectControl
  }
}

/** Path prefix of ACME HTTP-01 challenges, always passed to the app. */
export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/'

/**
 * True for the path of an ACME HTTP-01 challenge: the prefix and one token, which is base64url
 * (RFC 8555 sections 8.1 and 8.3). Only these are handed to the app over HTTP and for any host:
 * `/.well-known/acme-challenge/../../admin` is not one, whatever a route that normalizes paths
 * would make of it. @internal
 */
export function isAcmeChallengePath (path: string): boolean {
  const length = path.length
  if (length === ACME_CHALLENGE_PREFIX.length || !path.startsWith(ACME_CHALLENGE_PREFIX)) return false
  for (let i = ACME_CHALLENGE_PREFIX.length; i < length; i++) {
    const c = path.charCodeAt(i)
    // A-Z, a-z, 0-9, '-', '_'
    if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95)) return false
  }
  return true
}

/** Longest host quoted in a `redirect.unknown-host` event: the rest is an attacker's padding. */
const LOGGED_HOST_LENGTH = 100
const shown = (host: string): string => host.length > LOGGED_HOST_LENGTH ? `${host.slice(0, LOGGED_HOST_LENGTH)}...` : host

/**
 * The path and query of an absolute-form request target, always starting with '/' so that it cannot
 * run into the Location's host; '/' for a target of another form (*, authority-form).
 */
function absoluteFormPath (url: string): string {
  const rest = splitAbsoluteForm(url)?.rest ?? '/'
  return rest.charCodeAt(0) === 47 ? rest : `/${rest}`
}

/** Outcome of the redirect rules for one request. @internal */
export type RedirectDecision =
  | { kind: 'pass' }
  | { kind: 'redirect', status: 301 | 307 | 308, location: string }
  | { kind: 'unknown-host', host: string }

/**
 * Compiles the redirect rules once; the returned function does no allocation beyond the URL.
 * `httpsPort` 0 means the app's own port, known once it listens (`listeningPort`). Outside
 * production every redirect is a 307. @internal
 */
export function compileRedirect (
  config: Pick<HttpsRedirectConfig, 'allowedHosts' | 'exempt' | 'httpsPort'> & { production?: boolean },
  listeningPort: () => number = () => 443
): (method: string, url: string, host: string | undefined) => RedirectDecision {
  const isAllowed = compileAllowedHosts(config.allowedHosts)
  const exempt = new Set(config.exempt)
  const suffix = (port: number): string => port === 443 ? '' : `:${port}`
  let portSuffix: string | null = config.httpsPort === 0 ? null : suffix(config.httpsPort)
  const pass: RedirectDecision = { kind: 'pass' }
  const production = config.production === true
  return (method, url, hostHeader) => {
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    if (exempt.has(path) || isAcmeChallengePath(path)) return pass
    // The Host header's syntax is checked strictly before the list: the Location is built from it,
    // and `evil.test/.example.com` ends with an allowed wildcard's suffix but names evil.test.
    const host = hostHeader === undefined ? null : parseHost(hostHeader)
    if (host === null || !isAllowed(host)) return { kind: 'unknown-host', host: shown(host ?? hostHeader ?? '') }
    // An absolute-form request target (GET http://other/path HTTP/1.1) keeps its path and query,
    // never its host; anything else that is not a path (*, authority-form) goes to /.
    const target = url.charCodeAt(0) === 47 /* / */ ? url : absoluteFormPath(url)
    const authority = host.includes(':') ? `[${host}]` : host
    if (portSuffix === null) portSuffix = suffix(listeningPort())
    return {
      kind: 'redirect',
      status: !production ? 307 : method === 'GET' || method === 'HEAD' ? 301 : 308,
      location: `https://${authority}${portSuffix}${target}`
    }
  }
}

/** True when a request announces a body (chunked, or a Content-Length other than 0). */
function hasBody (req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

const httpsRedirectPlugin: FastifyPluginAsync<HttpsRedirectOptions> = async function httpsRedirectPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(httpsRedirectSchema, options, 'httpsRedirect')
  const decide = compileRedirect(config, () => {
    const address = fastify.server.address()
    return typeof address === 'object' && address !== null ? address.port : 443
  })
  const limit = eventLimiter(10)
  // Temporary redirects must not be kept by the browser either (a 307 may be cached when told so).
  const redirectHeaders = config.production ? { 'content-length': '0' } : { 'content-length': '0', 'cache-control': 'no-store' }
  const redirectClose = { ...redirectHeaders, connection: 'close' }

  function reportUnknownHost (log: FastifyInstance['log'], host: string, remoteAddress: string | undefined): void {
    const suppressed = limit()
    if (suppressed === false) return unloggedSecurityEvent('redirect.unknown-host')
    securityEvent(log, 'redirect.unknown-host', { host, remoteAddress, suppressed },
      `refused to redirect to "${host}": not in ALLOWED_HOSTS`)
  }

  if (config.mode === 'hook') {
    const none = Promise.resolve(null)
    fastify.decorate('httpsRedirect', { address: () => null, error: () => null, listening: () => none })
    // Chosen once every plugin is registered: proxyTrust's `request.secure` (X-Forwarded-Proto and,
    // when enabled, Forwarded, from trusted peers only) if it is there, else `request.protocol`.
    let isSecure: SecureTest = (request) => request.protocol === 'https'
    fastify.addHook('onReady', async () => { isSecure = secureTest(fastify) })
    fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (isSecure(request)) return
      const decision = decide(request.method, request.url, request.host)
      if (decision.kind === 'pass') return
      // As on the listener: the body is not read, and Node would drain it to keep the connection
      // alive for as long as the client goes on sending (a proxy that streams bodies passes it on).
      if (hasBody(request.raw)) reply.header('connection', 'close')
      if (decision.kind === 'unknown-host') {
        reportUnknownHost(request.log, decision.host, request.socket?.remoteAddress)
        return reply.code(400).type('text/plain; charset=utf-8').send('Unknown host\n')
      }
      if (!config.production) reply.header('cache-control', 'no-store')
      if (channels.redirect.hasSubscribers) channels.redirect.publish({ status: decision.status })
      return reply.code(decision.status).header('location', decision.location).send()
    })
    return
  }

  let server: Server | null = null

  function handle (req: IncomingMessage, res: ServerResponse): void {
    const decision = decide(req.method ?? 'GET', req.url ?? '/', req.headers.host)
    if (decision.kind === 'pass') {
      // This listener is plain HTTP by definition: what a peer says of the protocol is not believed
      // (a trusted proxy's X-Forwarded-Proto would otherwise earn HSTS on a plain HTTP answer).
      delete req.headers['x-forwarded-proto']
      delete req.headers.forwarded
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
    // The body is not read: the client sends it again to the Location. Node would drain it to keep
    // the connection alive, for as long as the client goes on sending; closing ends that.
    const headers = hasBody(req) ? redirectClose : redirectHeaders
    res.writeHead(decision.status, { ...headers, location: decision.location })
    res.end()
  }

  let closed = false
  let failure: Error | null = null
  const { promise: listening, finish } = listeningPromise()

  // Started by listen(), not by ready(): a test that only injects, or two apps built with the same
  // HTTP_PORT, open no port. A failure cannot fail listen() (Fastify logs an onListen hook's
  // error); the app keeps serving HTTPS and the error says how to fix the port.
  fastify.addHook('onListen', async () => {
    if (server !== null || closed) return
    // node:http is Fastify's anyway; loaded here, importing the suite alone does not pay for it.
    const { createServer } = await import('node:http')
    if (server !== null || closed) return
    // Node enforces these timeouts only when it checks its connections, every 30 s by default.
    const listener = createServer({ requestTimeout: 10_000, headersTimeout: 10_000, connectionsCheckingInterval: 1_000 }, handle)
    listener.keepAliveTimeout = 5_000
    server = listener
    try {
      await new Promise<void>((resolve, reject) => {
        listener.once('error', (error: NodeJS.ErrnoException) => { reject(redirectListenError(config.host, config.port, error)) })
        listener.listen({ host: config.host, port: config.port }, resolve)
      })
    } catch (error) {
      server = null
      failure = error as Error
      finish(failure)
      throw error
    }
    const address = listener.address() as AddressInfo
    fastify.log.info({ port: address.port, host: address.address }, 'HTTP to HTTPS redirect listening')
    finish(address)
  })

  fastify.addHook('onClose', async () => {
    closed = true
    finish(null)
    const listener = server
    if (listener === null) return
    server = null
    await new Promise<void>((resolve) => {
      listener.close(() => resolve())
      listener.closeAllConnections()
    })
  })

  fastify.decorate('httpsRedirect', {
    address () {
      const address = server?.address()
      return address !== null && typeof address === 'object' ? address : null
    },
    error () {
      return failure
    },
    listening: () => listening
  })
}

/** Redirects plain HTTP to HTTPS: its own listener, or a hook behind a TLS-terminating proxy. */
export const httpsRedirect = fp(httpsRedirectPlugin, { fastify: '5.x', name: 'fastify-secure-https/https-redirect' })
export default httpsRedirect
